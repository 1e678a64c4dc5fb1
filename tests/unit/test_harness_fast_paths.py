"""The per-test fast paths of the harness and the host decide exactly what the plain paths did.

Each fast path (one C encoder for every value, one JSON scan per frame, several frames read per
wake-up, a call's result parsed without helper calls) is compared with the plain code it
replaces, on the same generated inputs: same text, same objects, same exceptions.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ra3bench import judge
from ra3bench.expected import GroupExpectation
from ra3bench.records import Status
from ra3bench.sandbox import claims
from ra3bench.sandbox.base import CallResult, CallStatus, JobResult
from ra3bench.sandbox.harness import frames, protocol, server
from ra3bench.suites.base import Comparison, Problem, TestGroup

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PLAIN = json.JSONEncoder(separators=(",", ":"), allow_nan=False)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**4000, max_value=2**5000),
    st.floats(),
    st.text(max_size=12),
    st.binary(max_size=8),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(st.text(max_size=4), inner, max_size=3),
    ),
    max_leaves=12,
)
json_leaves = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10))
json_trees = st.recursive(
    json_leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(["k", "i", "status", "time_s", "error", "value", "t"]), inner, max_size=4),
    ),
    max_leaves=16,
)


def outcome(fn: Any, *args: Any) -> tuple[str, Any]:
    try:
        return "ok", fn(*args)
    except Exception as exc:
        return "raised", (type(exc), str(exc) if isinstance(exc, claims.MalformedClaim | frames.Malformed) else "")


# ---- one C encoder for every value


@SETTINGS
@given(value=values)
def test_the_value_encoder_writes_what_a_plain_encoder_writes(value: Any) -> None:
    encoded = protocol.encode_value(value)
    assert protocol.VALUE_ENCODER.encode(encoded) == PLAIN.encode(encoded)


@SETTINGS
@given(tree=json_trees)
def test_the_value_encoder_refuses_what_a_plain_encoder_refuses(tree: Any) -> None:
    assert outcome(protocol.VALUE_ENCODER.encode, tree) == outcome(PLAIN.encode, tree)


def test_a_patched_json_encoder_is_used_as_a_plain_encoder_would_use_it(monkeypatch: pytest.MonkeyPatch) -> None:
    assert protocol.VALUE_ENCODER._encode_c is not None  # the fast path is there to be left
    monkeypatch.setattr(json.JSONEncoder, "encode", lambda self, o: "patched")
    assert protocol.VALUE_ENCODER.encode([1]) == "patched"
    monkeypatch.undo()
    monkeypatch.setattr(json.encoder, "c_make_encoder", None)
    assert protocol.VALUE_ENCODER.encode([1, "é"]) == '[1,"\\u00e9"]'  # json's pure-Python path


# ---- one JSON scan per frame, several frames per read


@SETTINGS
@given(
    tree=json_trees,
    before=st.sampled_from(["", " ", "\n", "\t "]),
    after=st.sampled_from(["", " ", "\n", " x", "1", "{}", ","]),
)
def test_a_frame_parses_as_the_full_decoder_would(tree: Any, before: str, after: str) -> None:
    try:
        text = json.dumps(tree)
    except ValueError:
        return
    text = before + text + after
    assert outcome(frames._parse, text) == outcome(frames._DECODER.decode, text)


@pytest.mark.parametrize("text", ["", " ", "NaN", '{"v": Infinity}', "[" * 5000 + "]" * 5000, "1" * 5000, "\ud800"])
def test_what_the_full_decoder_refuses_a_frame_refuses(text: str) -> None:
    assert outcome(frames._parse, text)[0] == "raised"
    assert outcome(frames._parse, text) == outcome(frames._DECODER.decode, text)


@SETTINGS
@given(bodies=st.lists(json_trees.filter(lambda t: type(t) is dict), max_size=6), cut=st.integers(0, 40))
def test_frames_read_in_place_are_the_frames_read_one_by_one(bodies: list, cut: int) -> None:
    data = b"".join(len(b).to_bytes(4, "big") + b for b in (json.dumps(t).encode() for t in bodies))
    data = data[: max(0, len(data) - cut)]  # the last frame may be incomplete
    one_by_one, buf = [], bytearray(data)
    while True:
        try:
            got = frames.next_frame(buf, 1 << 20)
        except frames.Malformed:
            got = None
        if got is None:
            break
        one_by_one.append(got)
    in_place, buf, pos = [], bytearray(data), 0
    while True:
        try:
            got = frames.frame_at(buf, pos, 1 << 20)
        except frames.Malformed:
            got = None
        if got is None:
            break
        in_place.append(got)
        pos += 4 + got[1]
    assert json.dumps(in_place) == json.dumps(one_by_one)
    assert bytes(buf[pos:]) == data[sum(4 + size for _, size in in_place) :]


def test_an_oversized_frame_is_malformed_wherever_it_starts() -> None:
    buf = bytearray((2).to_bytes(4, "big") + b"{}" + (1 << 30).to_bytes(4, "big"))
    assert frames.frame_at(buf, 0, 1 << 20) == ({}, 2)
    with pytest.raises(frames.Malformed):
        frames.frame_at(buf, 6, 1 << 20)


# ---- letting frames gather while a child answers fast


def test_the_server_pauses_only_for_fast_frames_and_never_past_the_remaining_work() -> None:
    fast = server.LINGER_S / (4 * server.LINGER_FRAMES)  # seconds per item
    assert server._linger(10 * fast, 10, 1000, pidfd=5, buf=bytearray()) == server.LINGER_S
    assert server._linger(10 * fast, 10, 3, pidfd=5, buf=bytearray()) == pytest.approx(2 * fast)
    assert server._linger(10 * fast, 10, 1, pidfd=5, buf=bytearray()) == 0.0  # the last answer: read it at once
    assert server._linger(10 * fast, 0, 1000, pidfd=5, buf=bytearray()) == 0.0  # nothing came
    assert server._linger(10 * fast, 10, 1000, pidfd=-1, buf=bytearray()) == 0.0  # no pidfd: exits seen by polling
    assert server._linger(10 * fast, 10, 1000, pidfd=5, buf=bytearray(b"\0\0")) == 0.0  # a frame in progress
    slow = server.LINGER_S
    assert server._linger(10 * slow, 10, 1000, pidfd=5, buf=bytearray()) == 0.0  # slow calls: wake per frame
    # Far inside the slack of every check the server's clock makes.
    assert server.LINGER_S < frames.TIMEOUT_SLACK_S / 10 and server.LINGER_S < frames.OVERRUN_S / 10


# ---- a call's result on the host


def plain_call(data: Any, statuses: frozenset[str], what: str) -> CallResult:
    """``claims._call`` as it was: the helpers called, the messages formatted up front."""
    if type(data) is not dict:
        raise claims.MalformedClaim(f"{what} is not an object")
    status = data.get("status")
    if type(status) is not str or status not in statuses:
        raise claims.MalformedClaim(f"{what} has a bad status")
    value = data.get("value")
    return CallResult(
        status=CallStatus(status),
        value=value if status == "ok" else None,
        time_s=claims._seconds(data.get("time_s", 0.0), f"{what} time_s"),
        error=claims._text(data.get("error", ""), f"{what} error"),
    )


call_dicts = st.fixed_dictionaries(
    {},
    optional={
        "status": st.sampled_from(["ok", "error", "timeout", "memory", "missing", "syntax", "bogus"]) | json_leaves,
        "time_s": st.floats() | st.integers() | st.sampled_from([-0.0, 0.0, 1e308, math.inf]) | json_leaves,
        "error": st.text(max_size=3000) | json_leaves,
        "value": json_trees,
    },
)


@SETTINGS
@given(data=call_dicts | json_trees)
def test_a_call_result_parses_as_before(data: Any) -> None:
    statuses = frozenset({"ok", "error", "timeout", "memory", "missing"})
    fast = outcome(claims._call, data, statuses, "call")
    plain = outcome(plain_call, data, statuses, "call")
    assert fast[0] == plain[0]
    if fast[0] == "ok":
        a, b = fast[1], plain[1]
        assert (a.status, a.error, type(a.time_s)) == (b.status, b.error, type(b.time_s))
        assert a.time_s == b.time_s or (math.isnan(a.time_s) and math.isnan(b.time_s))
        assert json.dumps(a.value) == json.dumps(b.value)
    else:
        assert fast[1] == plain[1]  # the same exception, the same message (it becomes the verdict's detail)


# ---- equal encodings pass at once in the judge


def plain_judgement(problem: Problem, expected: GroupExpectation, result: JobResult, fail_fast: bool) -> tuple:
    """``judge._judge_group``'s loop with every test going the whole way (``_judge_call``)."""
    first, passed = None, 0
    for i in range(len(expected.args)):
        call = result.calls[i] if i < len(result.calls) else None
        try:
            status, detail = judge._judge_call(problem, Comparison.VALUES, expected, i, call, 1 << 16, first is None)
        except Exception as exc:
            return ("raised", type(exc))
        if status is Status.PASS:
            passed += 1
        elif first is None:
            first = (i, status, detail)
            if fail_fast:
                break
    if first is None:
        return (Status.PASS, passed, None, "")
    return (first[1], passed, first[0], first[2][:500])


@SETTINGS
@given(
    expected_values=st.lists(values, min_size=1, max_size=4),
    claimed=st.lists(values.map(protocol.encode_value) | json_trees | st.just({"h": None}), max_size=4),
    honest=st.lists(st.booleans(), min_size=4, max_size=4),
    fail_fast=st.booleans(),
    atol=st.sampled_from([0.0, 1e-6]),
)
def test_the_judge_decides_as_it_did_test_by_test(expected_values, claimed, honest, fail_fast, atol) -> None:
    n = len(expected_values)
    outputs = [protocol.encode_value(v) for v in expected_values]
    claims_ = [outputs[i] if honest[i] else c for i, c in enumerate(claimed[:n])]
    problem = Problem(
        task_id="T/0",
        prompt="",
        instruction="",
        entry_point="f",
        reference="",
        groups={"base": TestGroup("base", inputs=[[i] for i in range(n)])},
        atol=atol,
    )
    expected = GroupExpectation(
        args=[protocol.encode_value([i]) for i in range(n)], outputs=outputs, times_s=[0.0] * n, statuses=["ok"] * n
    )
    result = JobResult(load=CallResult(CallStatus.OK), calls=[CallResult(CallStatus.OK, c) for c in claims_])
    verdict = judge.judge_group(problem, "base", expected, result, fail_fast=fail_fast)
    plain = plain_judgement(problem, expected, result, fail_fast)
    if plain[0] == "raised":  # judge_group turns it into the group's fail
        assert verdict.status is Status.FAIL and verdict.detail.startswith(claims.MALFORMED)
    else:
        assert (verdict.status, verdict.n_passed, verdict.first_failure, verdict.detail) == plain
