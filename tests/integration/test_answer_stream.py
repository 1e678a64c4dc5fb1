"""Fail-fast jobs stop at the first wrong answer, judged by the trusted side as answers stream in.

Only the host knows the expected values, so before streaming a wrong answer at test 0 still ran
every test of its group. These tests check that the stop happens (function calls and stdin
programs), that it never changes a verdict, that a stop order arriving late never reaches the
next job, and that whatever a subverted server streams is the program's failure (malformed),
never a pass, a crash or a ``sandbox_error``.
"""

from __future__ import annotations

import dataclasses
import os
import time

import pytest

from ra3bench.expected import GroupExpectation
from ra3bench.judge import answer_check, judge_group
from ra3bench.records import Status
from ra3bench.sandbox.base import CallResult, CallStatus, Job, Limits
from ra3bench.sandbox.claims import MalformedClaim
from ra3bench.sandbox.harness.jobs import STOPPED
from ra3bench.sandbox.harness.protocol import encode_value
from ra3bench.sandbox.local import LocalSandbox
from ra3bench.sandbox.pool import AnswerStream
from ra3bench.suites.base import Comparison, Problem, TestGroup

LIMITS = Limits(memory_mb=512, load_time_s=5.0)
N = 40
SLOW_S = 0.05  # each call sleeps this long: running them all would take N * SLOW_S


def _problem(n: int = N) -> tuple[Problem, GroupExpectation]:
    inputs = [[i] for i in range(n)]
    problem = Problem("T/0", "", "", "f", "def f(x):\n    return x\n", {"base": TestGroup("base", inputs=inputs)})
    expected = GroupExpectation(
        [encode_value(list(a)) for a in inputs], [encode_value(i) for i in range(n)], [0.001] * n, ["ok"] * n
    )
    return problem, expected


def _job(body: str, problem: Problem, expected: GroupExpectation, *, stream: bool) -> Job:
    program = f"import time\ndef f(x):\n    time.sleep({SLOW_S})\n{body}\n"
    return Job(
        program,
        "f",
        list(expected.args),
        [5.0] * len(expected.args),
        limits=LIMITS,
        answer_fails=answer_check(problem, "base", expected, LIMITS.digest_min_bytes) if stream else None,
    )


@pytest.fixture(scope="module")
def sandbox():
    with LocalSandbox(workers=1) as box:
        yield box


@pytest.mark.parametrize("wrong_at", [0, 7, N - 1])
def test_a_wrong_answer_stops_the_group_there_and_the_verdict_is_unchanged(sandbox, wrong_at: int) -> None:
    problem, expected = _problem()
    body = f"    return x if x != {wrong_at} else -1"
    started = time.perf_counter()
    streamed = sandbox.run(_job(body, problem, expected, stream=True))
    streamed_s = time.perf_counter() - started
    whole = sandbox.run(_job(body, problem, expected, stream=False))

    assert [c.status for c in whole.calls] == [CallStatus.OK] * N  # without the stream: every test ran
    ran = [c for c in streamed.calls if c.status is CallStatus.OK]
    assert wrong_at + 1 <= len(ran) <= wrong_at + 3  # stopped at the failure (an answer or two in flight)
    assert all(c.status is CallStatus.MISSING and c.error == STOPPED for c in streamed.calls[len(ran) :])
    if wrong_at == 0:
        assert streamed_s < N * SLOW_S / 2
    one = judge_group(problem, "base", expected, streamed)
    other = judge_group(problem, "base", expected, whole)
    assert (one.status, one.first_failure, one.n_passed, one.detail) == (
        other.status,
        other.first_failure,
        other.n_passed,
        other.detail,
    )
    assert one.status is Status.FAIL and one.first_failure == wrong_at


def test_a_passing_program_streams_every_answer_and_passes(sandbox) -> None:
    problem, expected = _problem(12)
    result = sandbox.run(_job("    return x", problem, expected, stream=True))
    assert [c.value for c in result.calls] == list(range(12))
    assert judge_group(problem, "base", expected, result).status is Status.PASS


def test_a_late_stop_order_never_reaches_the_next_job(sandbox) -> None:
    """Wrong at the last test: the stop order often comes after the answer; the next jobs run whole."""
    problem, expected = _problem(3)
    for _ in range(15):
        stopped = sandbox.run(_job(f"    return x if x != {2} else -1", problem, expected, stream=True))
        assert judge_group(problem, "base", expected, stopped).first_failure == 2
        fine = sandbox.run(_job("    return x", problem, expected, stream=True))
        assert [c.value for c in fine.calls] == [0, 1, 2]


def test_stdin_programs_stop_at_the_first_wrong_output(sandbox) -> None:
    n = 30
    inputs = [[f"{i}\n"] for i in range(n)]
    outputs = [f"{i}\n" for i in range(n)]
    group = TestGroup("base", comparison=Comparison.STDIN, inputs=inputs, outputs=outputs)
    problem = Problem("S/0", "", "", "", "", {"base": group})
    expected = GroupExpectation(
        [encode_value(list(a)) for a in inputs], [encode_value(o) for o in outputs], [0.0] * n, ["ok"] * n
    )
    program = "x = int(input())\nprint(-1 if x == 1 else x)\n"
    job = Job(program, None, list(expected.args), [5.0] * n, limits=LIMITS, stdin=True)
    streamed = sandbox.run(dataclasses.replace(job, answer_fails=answer_check(problem, "base", expected, 1 << 16)))
    whole = sandbox.run(job)
    assert sum(c.status is CallStatus.OK for c in whole.calls) == n
    assert sum(c.status is CallStatus.OK for c in streamed.calls) <= 4  # test 1 failed: at most two more ran
    one, other = (judge_group(problem, "base", expected, r) for r in (streamed, whole))
    assert (one.status, one.first_failure, one.detail) == (other.status, other.first_failure, other.detail)
    assert one.first_failure == 1


def test_groups_judged_together_or_by_a_checker_do_not_stream() -> None:
    problem, expected = _problem(2)
    assert answer_check(problem, "base", expected, 1 << 16) is not None
    replay = dataclasses.replace(problem, groups={"base": TestGroup("base", comparison=Comparison.REPLAY)})
    assert answer_check(replay, "base", expected, 1 << 16) is None
    stdin = TestGroup("base", comparison=Comparison.STDIN, inputs=[["1"]], outputs=["1"])
    with_checker = dataclasses.replace(problem, groups={"base": stdin}, checker="print(1)")
    assert answer_check(with_checker, "base", expected, 1 << 16) is None


# --------------------------------------------------------------------------- what a subverted server streams


def _stream(n: int = 3, fails=lambda i, call: call.value != i) -> AnswerStream:
    _, expected = _problem(n)
    job = Job("", "f", list(expected.args), [1.0] * n, answer_fails=fails)
    return AnswerStream(job)


OK = {"status": "ok", "value": 0, "time_s": 0.0, "error": ""}


@pytest.mark.parametrize(
    "frame",
    [
        {"progress": {"0": OK}},  # not a list
        {"progress": [[0, OK]], "calls": []},  # extra keys
        {"progress": [[0]]},
        {"progress": [["0", OK]]},
        {"progress": [[True, OK]]},  # bool is not an index
        {"progress": [[3, OK]]},  # out of range
        {"progress": [[-1, OK]]},
        {"progress": [[0, OK], [0, OK]]},  # twice
        {"progress": [[0, {"status": "passed", "value": 0}]]},
        {"progress": [[0, {"status": "ok", "value": 0, "time_s": -1.0}]]},
        {"progress": [[0, {"status": "ok", "value": 0, "error": 5}]]},
    ],
)
def test_malformed_progress_is_rejected(frame) -> None:
    with pytest.raises(MalformedClaim):
        _stream().take(frame)


def test_the_first_wrong_answer_asks_to_stop_and_a_raising_check_does_not() -> None:
    stream = _stream()
    assert stream.take({"progress": [[0, OK]]}) is False
    assert stream.take({"progress": [[1, {**OK, "value": 5}]]}) is True

    def broken(i: int, call: CallResult) -> bool:
        raise RuntimeError("a judge bug")

    assert _stream(fails=broken).take({"progress": [[0, {**OK, "value": 5}]]}) is False


def test_the_final_answer_gets_back_exactly_what_was_streamed() -> None:
    from ra3bench.sandbox.claims import parse_result

    stream = _stream()
    stream.take({"progress": [[0, OK], [1, {**OK, "value": 1}]]})
    final = {"load": OK, "calls": [None, None, {"status": "missing", "error": STOPPED}], "script": None}
    result = parse_result(stream.fill(final), 3)
    assert [c.status for c in result.calls] == [CallStatus.OK, CallStatus.OK, CallStatus.MISSING]
    assert [c.value for c in result.calls[:2]] == [0, 1]
    # A call left out that was never streamed: malformed, the program's failure.
    lying = {"load": OK, "calls": [None, None, None], "script": None}
    result = parse_result(stream.fill(lying), 3)
    assert result.malformed and not result.sandbox_error


@pytest.mark.skipif(os.geteuid() != 0, reason="jobs that write to their server's stdout need root's own uid")
@pytest.mark.parametrize(
    "forged",
    [
        b'{"progress":[[99,{"status":"ok","value":0}]]}',  # an index the job does not have
        b'{"progress":[[0,{"status":"ok","value":0}]]}',  # then the server streams call 0 again
        b'{"load":{"status":"ok"},"calls":[null,null,null],"script":null}',  # a final answer leaving out all
    ],
)
def test_forged_progress_from_a_subverted_server_is_the_programs_failure(forged: bytes) -> None:
    """In the weakest local mode (jobs run as root, no bubblewrap) a job can write to its server's
    stdout, as a subverted server would: what it streams is a claim. (Such a job can write to the
    server's stdin too, and do anything else root can: that mode only stands in for a subverted
    server here; the answer channel, its write end, is what is attacked.)"""
    problem, expected = _problem(3)
    find_server = "SERVER = int(open(f'/proc/{os.getppid()}/stat').read().rpartition(')')[2].split()[1])\n"
    body = (
        "    base = f'/proc/{SERVER}/fd'\n"
        "    if x == 0:\n"
        "        for name in os.listdir(base):\n"
        "            flags = open(f'/proc/{SERVER}/fdinfo/{name}').read().split('flags:')[1].split()[0]\n"
        "            if os.readlink(f'{base}/{name}').startswith('pipe:') and int(flags, 8) & 3 == 1:\n"
        f"                data = {forged!r}\n"
        "                os.write(os.open(f'{base}/{name}', os.O_WRONLY), len(data).to_bytes(4, 'big') + data)\n"
        "    return x\n"  # right answers: only the forged frame can fail it
    )
    program = f"import os\n{find_server}def f(x):\n{body}"
    job = Job(
        program,
        "f",
        list(expected.args),
        [5.0] * 3,
        limits=LIMITS,
        answer_fails=answer_check(problem, "base", expected, LIMITS.digest_min_bytes),
    )
    with LocalSandbox(workers=1, use_bwrap=False, uid=0) as weak:
        result = weak.run(job)
        verdict = judge_group(problem, "base", expected, result)
        assert not result.sandbox_error
        assert verdict.status is Status.FAIL and verdict.detail.startswith("malformed result")
        again = weak.run(dataclasses.replace(job, program="def f(x):\n    return x\n"))  # the pool goes on
        assert judge_group(problem, "base", expected, again).status is Status.PASS


# --------------------------------------------------------------------------- a slow trusted side costs no program time


def _slow_host_job(
    n: int, value: str, delay_s: float, every: int, limit_s: float
) -> tuple[Problem, GroupExpectation, Job]:
    inputs = [[i] for i in range(n)]
    problem = Problem("T/1", "", "", "f", "", {"base": TestGroup("base", inputs=inputs)})
    expected = GroupExpectation(
        [encode_value(list(a)) for a in inputs],
        [encode_value(eval(value, {"x": i})) for i in range(n)],
        [0.0] * n,
        ["ok"] * n,
    )
    check = answer_check(problem, "base", expected, LIMITS.digest_min_bytes)

    def slow(i: int, call: CallResult) -> bool:  # a host busy judging other samples, or parsing large values
        if i % every == 0:
            time.sleep(delay_s)
        return check(i, call)

    job = Job(
        f"def f(x):\n    return {value}\n", "f", list(expected.args), [limit_s] * n, limits=LIMITS, answer_fails=slow
    )
    return problem, expected, job


@pytest.mark.parametrize(
    ("n", "value", "delay_s", "every"),
    [
        (4000, "x", 0.5, 500),  # small answers, far more than the pipe holds, while the host lags behind
        (4, "'v' * 300_000 + str(x)", 1.0, 1),  # large answers: not streamed at all
    ],
)
def test_a_slow_host_never_makes_the_program_time_out(sandbox, n: int, value: str, delay_s: float, every: int) -> None:
    """The server streams without ever blocking on the host: a test's time is the program's alone."""
    problem, expected, job = _slow_host_job(n, value, delay_s, every, limit_s=0.5)
    result = sandbox.run(job)
    verdict = judge_group(problem, "base", expected, result)
    assert verdict.status is Status.PASS, verdict.detail
