"""judge_group: which test decides a group's status, and how passes are counted."""

from __future__ import annotations

from ra3bench.expected import GroupExpectation
from ra3bench.judge import judge_group
from ra3bench.records import Status
from ra3bench.sandbox.base import CallResult, CallStatus, JobResult
from ra3bench.sandbox.harness.protocol import encode_value
from ra3bench.suites.base import Problem, TestGroup

PROBLEM = Problem(
    task_id="T/0",
    prompt="",
    instruction="",
    entry_point="f",
    reference="def f(x):\n    return x\n",
    groups={"base": TestGroup("base", inputs=[[i] for i in range(5)])},
)
EXPECTED = GroupExpectation(
    args=[encode_value([i]) for i in range(5)],
    outputs=[encode_value(i) for i in range(5)],
    times_s=[0.001] * 5,
    statuses=["ok"] * 5,
)


def result(*calls: CallResult) -> JobResult:
    return JobResult(load=CallResult(CallStatus.OK), calls=list(calls))


def ok(value: int) -> CallResult:
    return CallResult(CallStatus.OK, encode_value(value))


def test_all_equal_values_pass() -> None:
    verdict = judge_group(PROBLEM, "base", EXPECTED, result(*(ok(i) for i in range(5))))
    assert (verdict.status, verdict.n_passed, verdict.first_failure) == (Status.PASS, 5, None)


def test_without_fail_fast_every_test_is_judged_and_the_first_failure_decides() -> None:
    calls = result(ok(0), ok(7), CallResult(CallStatus.TIMEOUT, error="slow"), ok(3), ok(4))
    verdict = judge_group(PROBLEM, "base", EXPECTED, calls, fail_fast=False)
    assert (verdict.status, verdict.n_passed, verdict.first_failure) == (Status.FAIL, 3, 1)
    assert "expected 1, got 7" in verdict.detail


def test_under_fail_fast_judging_stops_at_the_first_failure() -> None:
    calls = result(ok(0), ok(7), ok(2), ok(3), ok(4))
    verdict = judge_group(PROBLEM, "base", EXPECTED, calls, fail_fast=True)
    assert (verdict.status, verdict.n_passed, verdict.first_failure) == (Status.FAIL, 1, 1)


def test_tests_stopped_after_a_failure_count_as_not_passed_but_do_not_decide() -> None:
    stopped = CallResult(CallStatus.MISSING, error="not run: 2 tests in a row timed out")
    timeout = CallResult(CallStatus.TIMEOUT, error="time limit exceeded")
    calls = result(ok(0), timeout, timeout, stopped, stopped)
    verdict = judge_group(PROBLEM, "base", EXPECTED, calls, fail_fast=False)
    assert (verdict.status, verdict.n_passed, verdict.first_failure) == (Status.TIMEOUT, 1, 1)


def test_a_result_missing_for_no_reason_is_an_error() -> None:
    verdict = judge_group(PROBLEM, "base", EXPECTED, result(ok(0), ok(1)), fail_fast=False)
    assert (verdict.status, verdict.first_failure) == (Status.ERROR, 2)
    assert verdict.detail == "no result for this test"


def test_a_rerun_runs_only_the_tests_that_timed_out_or_never_ran() -> None:
    from ra3bench.judge import merge_rerun, rerun_job
    from ra3bench.sandbox.base import Job

    job = Job(program="p", entry_point="f", calls=[[i] for i in range(5)], time_limits_s=[1.0, 1.1, 1.2, 1.3, 1.4])
    job.digest_calls = [2, 4]
    timeout = CallResult(CallStatus.TIMEOUT, error="slow")
    first = result(ok(0), CallResult(CallStatus.ERROR, error="boom"), timeout, ok(3), CallResult(CallStatus.MISSING))
    sub, redo = rerun_job(job, first)
    assert redo == [2, 4]
    assert sub.calls == [[2], [4]] and sub.time_limits_s == [1.2, 1.4] and sub.digest_calls == [0, 1]
    merged = merge_rerun(first, result(ok(2), ok(4)), redo)
    assert [c.status for c in merged.calls] == [
        CallStatus.OK,
        CallStatus.ERROR,
        CallStatus.OK,
        CallStatus.OK,
        CallStatus.OK,
    ]
    verdict = judge_group(PROBLEM, "base", EXPECTED, merged, fail_fast=False)
    assert (verdict.status, verdict.n_passed, verdict.first_failure) == (Status.ERROR, 4, 1)


def test_a_timeout_while_loading_reruns_the_whole_job() -> None:
    from ra3bench.judge import rerun_job
    from ra3bench.sandbox.base import Job

    job = Job(program="p", entry_point="f", calls=[[0], [1]], time_limits_s=[1.0, 1.0])
    loading = JobResult(load=CallResult(CallStatus.TIMEOUT))
    assert rerun_job(job, loading) == (job, [0, 1])


# --- a data set's checker, as open-r1's runner calls it ------------------------------------------


def test_the_checker_accepts_what_open_r1_accepts():
    from ra3bench.judge import checker_verdicts

    said = ["1", " 1 \n", "100\n", "0", "10", "1 1", "ok"]
    result = JobResult(load=CallResult(CallStatus.OK), calls=[CallResult(CallStatus.OK, value=text) for text in said])
    verdicts = checker_verdicts(list(range(len(said))), result)
    assert [verdicts[i] == "" for i in range(len(said))] == [True, True, True, False, False, False, False]
    assert "it printed '0'" in verdicts[3] or "it printed 0" in verdicts[3]


def test_the_checker_reads_the_output_without_empty_lines():
    from ra3bench.judge import without_blank_lines

    assert without_blank_lines("3\n\n1 2 3\n\n") == "3\n1 2 3\n"
    assert without_blank_lines("a\n \n\r\nb") == "a\n \n\r\nb"  # sed '/^$/d' keeps spaces and a lone CR
    assert without_blank_lines("") == "" and without_blank_lines("x") == "x"
