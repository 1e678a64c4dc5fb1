"""A timeout is re-run only where a busy machine could explain it (pipeline.Evaluator._worth_rerunning)."""

from __future__ import annotations

from ra3bench.expected import Expectations, GroupExpectation
from ra3bench.pipeline import EvalSettings, Evaluator
from ra3bench.records import Sample, Status
from ra3bench.sandbox.base import CallResult, CallStatus, Job, JobResult, Sandbox
from ra3bench.sandbox.harness.protocol import encode_value
from ra3bench.suites.base import Comparison, Problem, Suite, TestGroup


class AlwaysTimesOut(Sandbox):
    """Every call of every job runs out of time (and the host saw it do so)."""

    name = "slow"

    def __init__(self) -> None:
        self.jobs: list[Job] = []

    @property
    def workers(self) -> int:
        return 1

    def run(self, job: Job) -> JobResult:
        self.jobs.append(job)
        calls = [CallResult(CallStatus.TIMEOUT, time_s=t, error="timed out") for t in job.time_limits_s]
        return JobResult(load=CallResult(CallStatus.OK), calls=calls, wall_s=sum(job.time_limits_s))


class OneProblem(Suite):
    name = "one"
    description = ""
    versions = {}  # noqa: RUF012
    default_version = "1"

    def __init__(self) -> None:
        self.version = "1"

    @property
    def data_sha256(self) -> str:
        return "0" * 64

    def parse(self, path):  # pragma: no cover
        raise NotImplementedError

    def program_from_sample(self, problem, sample):  # pragma: no cover
        raise NotImplementedError


def verdict_with_reference_time(reference_s: float) -> tuple[Status, int, str]:
    problem = Problem("t/0", "", "", "f", "", {"base": TestGroup("base", Comparison.VALUES, [[1]])})
    expected = GroupExpectation(
        args=[encode_value([1])], outputs=[encode_value(2)], times_s=[reference_s], statuses=["ok"]
    )
    expectations = Expectations(key="k", path=None, sha256="", tasks={"t/0": {"base": expected}})
    sandbox = AlwaysTimesOut()
    verdict = Evaluator(OneProblem(), sandbox, expectations, EvalSettings()).evaluate(
        problem, Sample("t/0", 0, "def f(x):\n    while True: pass\n")
    )
    return verdict.status, len(sandbox.jobs), verdict.groups["base"].detail


def test_a_timeout_far_beyond_the_reference_is_final_at_once():
    """1 s limit (the floor) on a 20 us reference call: an infinite loop, not load; one run, said so."""
    status, jobs, detail = verdict_with_reference_time(20e-6)
    assert status is Status.TIMEOUT and jobs == 1 and "not re-run" in detail


def test_a_timeout_near_the_reference_time_is_run_again():
    """A 0.5 s reference call gets max(1, 4 x 0.5) = 2 s: a busy machine could explain a timeout, so it re-runs."""
    status, jobs, detail = verdict_with_reference_time(0.5)
    assert status is Status.TIMEOUT and jobs == 2 and "not re-run" not in detail


def test_a_timeout_without_a_reference_time_is_run_again():
    """Outputs given by the data (LiveCodeBench, Codeforces): no reference time to weigh the limit against."""
    status, jobs, _ = verdict_with_reference_time(0.0)
    assert status is Status.TIMEOUT and jobs == 2


def test_the_manifest_says_which_timeouts_are_re_run():
    assert "within 50x the reference's time" in EvalSettings().describe()["timeout_rerun_rule"]
