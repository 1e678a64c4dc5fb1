"""The host judge is a total function of (expected values, the program's claim).

Property-based (hypothesis): whatever a sandboxed program makes come back — well-formed
encodings, malformed ones, wrong tags, digests, NaN/inf, deep nesting, huge values, wrong
shapes — judging never raises, and returns ``pass`` only for a claim that decodes to a value
equal to the expected one. Plus the known forgeries, one test each.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ra3bench.expected import GroupExpectation
from ra3bench.judge import judge_group
from ra3bench.oracles import values_match
from ra3bench.records import Status
from ra3bench.sandbox.base import CallResult, CallStatus, Job, JobResult, Limits
from ra3bench.sandbox.claims import MalformedClaim, decode_claim, parse_frame, parse_result
from ra3bench.sandbox.harness.protocol import VALUE_ENCODER, encode_value
from ra3bench.sandbox.pool import believe_timeouts
from ra3bench.suites.base import Comparison, Problem, TestGroup

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ---- strategies

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**4000, max_value=2**5000),  # travels as {"ix": hex}
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([math.inf, -math.inf]),
    st.text(max_size=20),
    st.binary(max_size=10),
)
hashables = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8)),
    lambda inner: st.tuples(inner, inner) | st.frozensets(inner, max_size=3),
    max_leaves=6,
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.sets(hashables, max_size=4),
        st.dictionaries(hashables, inner, max_size=3),
    ),
    max_leaves=12,
)
TAGS = ["t", "s", "fs", "d", "f", "b", "ix", "c", "h", "r", "type", "k", "zz", ""]
json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),  # NaN and inf included: a raw non-finite float must be rejected
    st.text(max_size=12),
    st.sampled_from(["nan", "inf", "-inf", "0x1f", "-0x", "zz", "ab", "a" * 64, "0" * 64, "sNaN"]),
)
json_trees = st.recursive(
    json_leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(TAGS), inner, max_size=3),
    ),
    max_leaves=16,
)


def nested_list(depth: int) -> list:
    node: list = []
    for _ in range(depth):
        node = [node]
    return node


def claims_for(expected_value):
    """Claims a program could send: honest encodings of anything, the expected encoding itself,
    garbage trees, deep nesting, digests (null, wrong, right-looking)."""
    encoded = encode_value(expected_value)
    text = VALUE_ENCODER.encode(encoded)
    return st.one_of(
        values.map(encode_value),
        st.just(encoded),
        json_trees,
        st.integers(min_value=60, max_value=3000).map(nested_list),
        st.sampled_from([{"h": None}, {"h": ""}, {"h": "0" * 64}, {"h": hashlib.sha256(text.encode()).hexdigest()}]),
    )


def problem(oracle: str | None = None, atol: float = 0.0, comparison: Comparison = Comparison.VALUES) -> Problem:
    return Problem(
        task_id="T/0",
        prompt="",
        instruction="",
        entry_point="f",
        reference="def f(x):\n    return x\n",
        groups={"base": TestGroup("base", inputs=[[0]], comparison=comparison)},
        oracle=oracle,
        atol=atol,
    )


def expectation(expected_value) -> GroupExpectation:
    return GroupExpectation(
        args=[encode_value([0])], outputs=[encode_value(expected_value)], times_s=[0.0], statuses=["ok"]
    )


def judge_claim(claim, expected_value, digest_min_bytes: int = 1 << 16, **kwargs) -> Status:
    result = JobResult(load=CallResult(CallStatus.OK), calls=[CallResult(CallStatus.OK, claim)])
    return judge_group(problem(**kwargs), "base", expectation(expected_value), result, digest_min_bytes).status


def equal_as_evalplus(claimed, expected_value) -> bool:
    """The independent rule: pass means the claim decodes, and decodes to an equal value (floats within 1e-6)."""
    try:
        decoded = decode_claim(claimed)
    except MalformedClaim:
        return False
    return values_match(decoded, expected_value, [0], 0.0)


# ---- properties


@SETTINGS
@given(expected_value=values, data=st.data())
def test_judging_any_claim_never_raises_and_passes_only_an_equal_value(expected_value, data) -> None:
    claim = data.draw(claims_for(expected_value))
    status = judge_claim(claim, expected_value)
    assert isinstance(status, Status) and status is not Status.SANDBOX_ERROR
    if status is Status.PASS:
        assert equal_as_evalplus(claim, expected_value), (claim, expected_value)


@SETTINGS
@given(expected_value=values)
def test_an_honest_claim_of_the_expected_value_passes(expected_value) -> None:
    """Strictness must not reject what the harness honestly sends (NaN equals nothing, as in Python)."""
    encoded = json.loads(VALUE_ENCODER.encode(encode_value(expected_value)))  # the trip through the frame
    status = judge_claim(encoded, expected_value)
    if expected_value == expected_value:  # false only with a NaN inside
        assert status is Status.PASS


@SETTINGS
@given(expected_value=st.lists(st.text(min_size=5, max_size=10), min_size=5, max_size=10), data=st.data())
def test_a_digest_passes_only_where_asked_and_only_with_the_right_hash(expected_value, data) -> None:
    text = VALUE_ENCODER.encode(encode_value(expected_value))
    right = {"h": hashlib.sha256(text.encode()).hexdigest()}
    claim = data.draw(st.one_of(st.just(right), claims_for(expected_value)))
    small = judge_claim(claim, expected_value, digest_min_bytes=1)  # the job asked for a digest of this test
    if small is Status.PASS:
        assert claim == right or equal_as_evalplus(claim, expected_value)
    # No digest was asked for (the value is below the threshold): a digest is malformed, even the right one.
    assert judge_claim(right, expected_value, digest_min_bytes=1 << 30) is Status.FAIL
    assert judge_claim(right, expected_value, digest_min_bytes=1, atol=1e-6) is Status.FAIL  # not an equality test


@SETTINGS
@given(
    out=st.text(alphabet=st.sampled_from(list("0123456789.eE+- \nsNaInfity")), max_size=40),
    expected_out=st.sampled_from(["1.5\n", "0 0\n", "NaN\n", "3\n4\n"]),
    rule=st.sampled_from(["lcb", "tokens", "tokens_any_case"]),
)
def test_stdin_answers_never_crash_the_checker(out, expected_out, rule) -> None:
    status = judge_claim(out, expected_out, oracle=rule, comparison=Comparison.STDIN)
    assert status in (Status.PASS, Status.FAIL)


@SETTINGS
@given(message=json_trees, n_calls=st.integers(min_value=0, max_value=3))
def test_any_answer_parses_to_a_result_or_to_malformed_never_raises(message, n_calls) -> None:
    result = parse_result(message, n_calls)
    assert isinstance(result, JobResult)
    if not result.malformed and not result.sandbox_error and result.load.status is CallStatus.OK:
        assert len(result.calls) == n_calls


@SETTINGS
@given(body=st.binary(max_size=200) | json_trees.map(lambda t: json.dumps(t).encode()))
def test_any_frame_bytes_parse_or_are_malformed(body) -> None:
    with contextlib.suppress(MalformedClaim):
        assert type(parse_frame(body)) is dict


# ---- the forgeries found so far, one each


def test_the_null_digest_forgery_fails() -> None:
    """Issue 16: a patched encoder made every call say {"h": null}; None == None used to pass it."""
    assert judge_claim({"h": None}, [1, 2, 3]) is Status.FAIL
    assert judge_claim({"h": None}, None) is Status.FAIL


def test_malformed_claims_fail_with_the_reason() -> None:
    result = JobResult(load=CallResult(CallStatus.OK), calls=[CallResult(CallStatus.OK, {"t": 5})])
    verdict = judge_group(problem(), "base", expectation((5,)), result)
    assert verdict.status is Status.FAIL and verdict.detail.startswith("malformed result")


def test_deep_nesting_nan_tokens_and_huge_ints_in_a_frame_are_malformed_not_crashes() -> None:
    for body in (b"[" * 100_000 + b"]" * 100_000, b'{"v": NaN}', b'{"v": Infinity}', b'{"v": ' + b"9" * 5000 + b"}"):
        try:
            parse_frame(body)
        except MalformedClaim:
            continue
        raise AssertionError(f"accepted {body[:30]!r}")
    assert judge_claim(nested_list(5000), [1]) is Status.FAIL


def test_wrong_shapes_do_not_broadcast_to_a_pass() -> None:
    assert judge_claim([[]], [1.0]) is Status.FAIL
    assert judge_claim([[1.0, 1.0]], [1.0, 1.0]) is Status.FAIL


def test_a_signalling_nan_answer_is_a_wrong_answer_not_an_aborted_run() -> None:
    assert judge_claim("sNaN\n", "1\n", oracle="lcb", comparison=Comparison.STDIN) is Status.FAIL
    assert judge_claim("1.50\n", "1.5\n", oracle="lcb", comparison=Comparison.STDIN) is Status.PASS


def test_a_result_with_the_wrong_number_of_calls_is_malformed() -> None:
    ok = {"status": "ok", "value": 1, "time_s": 0.0, "error": ""}
    message = {"load": {"status": "ok"}, "calls": [ok, ok], "sandbox_error": ""}
    assert parse_result(message, 3).malformed
    assert not parse_result(message, 2).malformed


def test_a_timeout_the_host_did_not_see_is_an_error() -> None:
    job = Job(program="", entry_point="f", calls=[[1], [2]], time_limits_s=[2.0, 2.0], limits=Limits())
    claimed = JobResult(
        load=CallResult(CallStatus.OK), calls=[CallResult(CallStatus.TIMEOUT), CallResult(CallStatus.OK, 1)]
    )
    assert believe_timeouts(job, claimed, wall_s=0.05).calls[0].status is CallStatus.ERROR
    real = JobResult(
        load=CallResult(CallStatus.OK), calls=[CallResult(CallStatus.TIMEOUT), CallResult(CallStatus.OK, 1)]
    )
    assert believe_timeouts(job, real, wall_s=2.1).calls[0].status is CallStatus.TIMEOUT


def test_a_group_whose_judging_raises_is_that_samples_fail_and_the_run_goes_on(capsys) -> None:
    from ra3bench.expected import Expectations
    from ra3bench.pipeline import EvalSettings, Evaluator
    from ra3bench.records import Sample
    from ra3bench.sandbox.base import Sandbox

    class Exploding(Sandbox):
        workers = 1

        def run(self, job: Job) -> JobResult:
            raise RuntimeError("boom")

    expectations = Expectations(key="k", path=None, sha256="", tasks={"T/0": {"base": expectation(1)}})
    evaluator = Evaluator(None, Exploding(), expectations, EvalSettings())  # type: ignore[arg-type]
    verdict = evaluator.evaluate(problem(), Sample("T/0", 0, "def f(x):\n    return x\n"))
    assert verdict.status is Status.FAIL and "judging failed (RuntimeError: boom)" in verdict.groups["base"].detail
    assert "judging T/0 (base) failed" in capsys.readouterr().err


def test_a_syntax_error_the_host_compiler_does_not_find_is_an_error() -> None:
    from ra3bench.sandbox.pool import believe_syntax

    def claimed(program: str) -> CallStatus:
        result = JobResult(load=CallResult(CallStatus.SYNTAX, error="SyntaxError: claimed"))
        return believe_syntax(Job(program=program), result).load.status

    assert claimed("def f(x):\n    return x\n") is CallStatus.ERROR
    assert claimed("def f(x) return x\n") is CallStatus.SYNTAX
    assert claimed("x = '\0'") is CallStatus.SYNTAX  # compile() refuses NUL bytes: a real failure to compile
