import math

from ra3bench.oracles import values_match


class AlwaysEqual:
    def __eq__(self, other):
        return True


def test_exact_and_float_tolerance_follow_evalplus():
    assert values_match([1, 2], [1, 2], [], 0.0)
    assert not values_match([1, 2], [2, 1], [], 0.0)
    assert values_match(0.1 + 0.2, 0.3, [], 0.0)  # floats get atol 1e-6 even when the task has none
    assert not values_match(0.31, 0.3, [], 0.0)
    assert not values_match(1, 1.0000001, [], 0.0)  # int expected: exact only
    assert not values_match((1.0, 2.0), [1.0, 2.0], [], 1e-6)  # types must agree for the tolerant path
    assert values_match([1.0, 2.0000000001], [1.0, 2.0], [], 0.0)


def test_special_oracles():
    assert values_match({3, 1}, [1, 3], [], 0, "set_eq")
    assert values_match("match!", True, [], 0, "not_none")
    assert not values_match(None, True, [], 0, "not_none")
    coeffs = [-6, 11, -6, 1]  # (x-1)(x-2)(x-3)
    assert values_match(2.0, 1.0, [coeffs], 1e-6, "find_zero")
    assert not values_match(2.5, 1.0, [coeffs], 1e-6, "find_zero")
    assert values_match(0, 5, [1, 2], 0, "sum_div")


def test_values_that_crossed_the_wire_cannot_force_a_match():
    from ra3bench.sandbox.harness.protocol import decode_value, encode_value

    decoded = decode_value(encode_value(AlwaysEqual()))
    assert not values_match(decoded, 3, [], 0.0)
    assert not values_match(decoded, decoded, [], 0.0)

    class SneakyInt(int):
        def __eq__(self, other):
            return True

    assert not values_match(decode_value(encode_value(SneakyInt(4))), 3, [], 0.0)
    assert not values_match(math.nan, math.nan, [], 0.0)
