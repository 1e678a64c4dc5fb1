"""The wire protocol: every tagged type round-trips, hostile values become Opaque, frames are strict."""

from __future__ import annotations

import io
import json
import math
import os
import threading

import pytest

from ra3bench.sandbox.harness import protocol
from ra3bench.sandbox.harness.protocol import Opaque, decode_value, encode_value


def roundtrip(value: object) -> object:
    """Encode, go through JSON text as on the wire, decode."""
    return decode_value(json.loads(json.dumps(encode_value(value), allow_nan=False)))


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        False,
        0,
        -7,
        2**200,
        10**5000,
        -(7**9000),
        -(3**150),
        1.5,
        -0.0,
        "",
        "héllo\n\x00",
        [],
        [1, [2, [3]]],
        (),
        (1, "a", (2.5, None)),
        {1, 2, 3},
        frozenset({"a", (1, 2)}),
        {},
        {"a": 1, 2: [3]},
        {(1, 2): "tuple key", frozenset({1}): "frozenset key"},
        b"",
        b"\x00\xffbytes",
        3 + 4j,
        complex(float("inf"), -1.0),
        [({1: (2, [3, {4}])}, b"x", 1j)],
    ],
    ids=lambda value: type(value).__name__,  # repr() of a 5,000-digit int raises
)
def test_every_tagged_type_round_trips_with_its_exact_type(value: object) -> None:
    back = roundtrip(value)
    assert back == value
    assert type(back) is type(value)
    if isinstance(value, (list, tuple)):
        assert [type(x) for x in back] == [type(x) for x in value]  # type: ignore[union-attr]


def test_tuple_and_list_stay_distinct() -> None:
    assert roundtrip((1, 2)) == (1, 2) and type(roundtrip((1, 2))) is tuple
    assert type(roundtrip([1, 2])) is list
    assert roundtrip([(1,), [1]]) == [(1,), [1]]
    assert encode_value((1, 2)) != encode_value([1, 2])


def test_non_finite_floats() -> None:
    assert roundtrip(float("inf")) == float("inf")
    assert roundtrip(float("-inf")) == float("-inf")
    nan = roundtrip(float("nan"))
    assert isinstance(nan, float) and math.isnan(nan)
    assert encode_value(float("nan")) == {"f": "nan"}
    json.dumps(encode_value([float("nan"), float("inf")]), allow_nan=False)  # strict JSON


def test_bool_is_not_int_and_int_is_not_float() -> None:
    assert type(roundtrip(True)) is bool
    assert type(roundtrip(1)) is int
    assert type(roundtrip(1.0)) is float


def test_opaque_equals_nothing_not_even_itself() -> None:
    class Thing:
        def __repr__(self) -> str:
            return "Thing()"

    value = roundtrip(Thing())
    assert isinstance(value, Opaque)
    same = value
    assert value != same
    assert not value.__eq__(same)
    assert value != Thing() and value != "Thing()" and value is not None
    assert value.type_name == "Thing" and "Thing()" in value.text


class EvilInt(int):
    def __eq__(self, other: object) -> bool:
        return True

    __hash__ = int.__hash__


class EvilList(list):
    def __eq__(self, other: object) -> bool:
        return True


class EvilStr(str):
    def __eq__(self, other: object) -> bool:
        return True

    __hash__ = str.__hash__


class EvilFloat(float):
    def __eq__(self, other: object) -> bool:
        return True


class AlwaysEqual:
    def __eq__(self, other: object) -> bool:
        return True


@pytest.mark.parametrize(
    "hostile", [EvilInt(3), EvilList([1]), EvilStr("x"), EvilFloat(1.0), AlwaysEqual(), [AlwaysEqual()]]
)
def test_subclasses_and_always_equal_objects_are_opaque(hostile: object) -> None:
    encoded = encode_value(hostile)
    back = decode_value(json.loads(json.dumps(encoded)))
    inner = back[0] if isinstance(back, list) else back
    assert isinstance(inner, Opaque)
    for anything in (3, [1], "x", 1.0, inner, None):
        assert inner != anything
    assert not isinstance(inner, (int, str, list, float))


def test_hostile_repr_does_not_break_encoding() -> None:
    class Explodes:
        def __repr__(self) -> str:
            raise SystemExit("boom")

    encoded = encode_value(Explodes())
    assert encoded["type"] == "Explodes" and encoded["r"] == "<unrepresentable>"


def test_deep_nesting_is_cut_at_max_depth_not_a_recursion_error() -> None:
    deep: list = []
    node = deep
    for _ in range(10_000):
        child: list = []
        node.append(child)
        node = child
    encoded = encode_value(deep)
    text = json.dumps(encoded)  # must not raise RecursionError on the way out either
    assert text.count("[") <= protocol.MAX_DEPTH + 2
    back = decode_value(json.loads(text))
    levels = 0
    while isinstance(back, list):
        back, levels = back[0], levels + 1
    assert isinstance(back, Opaque)
    assert levels == protocol.MAX_DEPTH


def test_self_referencing_list_terminates() -> None:
    loop: list = []
    loop.append(loop)
    encoded = encode_value(loop)
    json.dumps(encoded)


def test_malformed_tags_decode_to_opaque() -> None:
    assert isinstance(decode_value({"zz": 1}), Opaque)
    assert isinstance(decode_value({"t": [1], "s": [2]}), Opaque)
    assert decode_value({"s": [[1, 2]]}) != {(1, 2)}  # an unhashable member becomes Opaque, never a crash


def test_framing_round_trips_over_a_pipe() -> None:
    messages = [{"a": 1}, {"value": encode_value({(1, 2): [b"x", 1j]})}, {"big": "x" * 300_000}]
    rfd, wfd = os.pipe()
    with os.fdopen(rfd, "rb") as reader, os.fdopen(wfd, "wb") as writer:

        def write_all() -> None:
            for message in messages:
                protocol.write_frame(writer, message)
            writer.close()

        thread = threading.Thread(target=write_all)
        thread.start()
        received = []
        while (message := protocol.read_frame(reader)) is not None:
            received.append(message)
        thread.join()
    assert received == messages
    assert decode_value(received[1]["value"]) == {(1, 2): [b"x", 1j]}


def test_truncated_frame_is_an_error_not_a_clean_end() -> None:
    buf = io.BytesIO()
    protocol.write_frame(buf, {"status": "ok", "value": [1, 2, 3]})
    data = buf.getvalue()
    for cut in (2, 4, len(data) - 1):
        with pytest.raises(protocol.ProtocolError):
            protocol.read_frame(io.BytesIO(data[:cut]))
    assert protocol.read_frame(io.BytesIO(b"")) is None


def test_garbage_frames_are_rejected() -> None:
    with pytest.raises(protocol.ProtocolError):
        protocol.read_frame(io.BytesIO(b"\x00\x00\x00\x03abc"))
    with pytest.raises(protocol.ProtocolError):
        protocol.read_frame(io.BytesIO(b"\x00\x00\x00\x02[]"))
    with pytest.raises(protocol.ProtocolError):
        protocol.read_frame(io.BytesIO(b"\xff\xff\xff\xff"))


def test_a_class_claiming_to_be_numpy_is_opaque_and_its_methods_never_run() -> None:
    ran: list[str] = []

    class Scalar:  # everything the old check looked at, faked
        __module__ = "numpy"
        ndim = 0

        def item(self) -> int:
            ran.append("item")
            return 42

        def __getattr__(self, name: str) -> object:
            ran.append(name)
            raise AttributeError(name)

    encoded = encode_value(Scalar())
    assert isinstance(decode_value(encoded), Opaque) and encoded["type"] == "Scalar"
    assert "item" not in ran


def test_real_numpy_scalars_and_zero_d_arrays_encode_as_their_values() -> None:
    np = pytest.importorskip("numpy")
    values = [np.int64(3), np.float64(0.5), np.bool_(True), np.str_("x"), np.array(7)]
    assert roundtrip(values) == [3, 0.5, True, "x", 7]
    assert isinstance(roundtrip(np.array([1, 2])), Opaque)  # not 0-d: its repr, as before

    class Sub(np.ndarray):  # a program's subclass is not numpy's type
        def item(self, *args: object) -> object:
            raise AssertionError("a method of the program's class ran")

    assert isinstance(roundtrip(np.zeros(()).view(Sub)), Opaque)
