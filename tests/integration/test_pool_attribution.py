"""Whose fault is it? The pool decides from what the host observed, never from what came back.

A program that takes its worker down is the program's failure (an ``error``), not a
``sandbox_error`` that RLVR would drop from the reward; a worker that cannot run even a
trivial job is the infrastructure's. Jobs that carry expected values run on workers of their
own. Garbage on the worker's stdout is a malformed result, not a fault.
"""

from __future__ import annotations

import os
import sys
import time

import pytest

from ra3bench.judge import judge_group
from ra3bench.records import Status
from ra3bench.sandbox.base import CallStatus, Job, Limits
from ra3bench.sandbox.harness.protocol import encode_value
from ra3bench.sandbox.local import LocalSandbox
from ra3bench.sandbox.pool import Launch

LIMITS = Limits(memory_mb=512, load_time_s=5.0)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="jobs that can signal their server need root's own uid")


# The harness server: the parent of the fork server that forked this job's child.
FIND_SERVER = "SERVER = int(open(f'/proc/{os.getppid()}/stat').read().rpartition(')')[2].split()[1])\n"


def job(body: str, holds_expected: bool = False) -> Job:
    program = f"import os, signal\n{FIND_SERVER}def f(x):\n{body}\n"
    return Job(program, "f", [encode_value([1])], [5.0], limits=LIMITS, holds_expected=holds_expected)


@pytest.fixture(scope="module")
def same_uid_sandbox():
    """The weakest local mode: jobs run as the server's own uid, so they can signal it."""
    sandbox = LocalSandbox(workers=1, use_bwrap=False, uid=0)
    yield sandbox
    sandbox.close()


def test_a_program_that_kills_its_worker_is_an_error_not_a_sandbox_error(same_uid_sandbox) -> None:
    result = same_uid_sandbox.run(job("    os.kill(SERVER, signal.SIGKILL)\n    return 1"))
    assert not result.sandbox_error
    assert result.load.status is CallStatus.ERROR
    assert "took its sandbox worker down twice" in result.load.error
    assert same_uid_sandbox.run(job("    return x + 1")).calls[0].value == 2  # and the pool goes on


def test_a_program_that_stops_its_worker_gets_no_sandbox_error_either(same_uid_sandbox, monkeypatch) -> None:
    monkeypatch.setattr("ra3bench.sandbox.pool.HOST_GRACE_S", 0.0)  # a hung worker is given up on after 3 s
    monkeypatch.setattr("ra3bench.sandbox.pool.harness.job_budget_s", lambda job: 3.0)
    result = same_uid_sandbox.run(job("    os.kill(SERVER, signal.SIGSTOP)\n    return 1"))
    assert not result.sandbox_error and result.load.status is CallStatus.ERROR


def test_garbage_from_a_worker_is_a_malformed_result(same_uid_sandbox) -> None:
    """A job with the server's uid can write to the server's stdout through /proc: the answer is garbage."""
    body = (
        "    base = f'/proc/{SERVER}/fd'\n"
        "    for name in os.listdir(base):\n"
        "        if os.readlink(f'{base}/{name}').startswith('pipe:'):\n"
        "            os.write(os.open(f'{base}/{name}', os.O_WRONLY), b'\\x00\\x00\\x00\\x05hello')\n"
        "    os.kill(SERVER, signal.SIGSTOP)\n"
    )
    result = same_uid_sandbox.run(job(body))
    assert not result.sandbox_error
    verdict = judge_group_for(result)
    assert verdict.status is Status.FAIL and verdict.detail.startswith("malformed result")


def judge_group_for(result):
    from ra3bench.expected import GroupExpectation
    from ra3bench.suites.base import Problem, TestGroup

    problem = Problem("T/0", "", "", "f", "def f(x):\n    return x\n", {"base": TestGroup("base", inputs=[[1]])})
    expected = GroupExpectation([encode_value([1])], [encode_value(1)], [0.0], ["ok"])
    return judge_group(problem, "base", expected, result)


class BrokenLocal(LocalSandbox):
    """A backend whose workers exit at once: the infrastructure is down."""

    def _launch(self) -> Launch:
        return Launch(argv=[sys.executable, "-c", "import sys; sys.exit(3)"], env={"PATH": os.defpath})


def test_a_worker_that_cannot_run_a_trivial_job_is_a_sandbox_error() -> None:
    with BrokenLocal(workers=1, use_bwrap=False, uid=0) as sandbox:
        result = sandbox.run(job("    return 1"))
    assert result.sandbox_error and "trivial job" in result.sandbox_error


def test_jobs_with_expected_values_never_share_a_worker_with_candidates() -> None:
    with LocalSandbox(workers=1) as sandbox:
        reference = sandbox.run(job("    return os.getpid()", holds_expected=True))
        pids_after_reference = set(sandbox.worker_pids())
        candidate = sandbox.run(job("    return os.getpid()"))
        pids_after_candidate = set(sandbox.worker_pids())
    assert reference.calls[0].status is CallStatus.OK and candidate.calls[0].status is CallStatus.OK
    assert len(pids_after_reference) == 1 and len(pids_after_candidate) == 2  # a worker of its own


def _wait_for(condition, timeout_s: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_prestart_starts_the_candidate_workers_before_any_job() -> None:
    with LocalSandbox(workers=2) as sandbox:
        sandbox.prestart()
        assert _wait_for(lambda: len(sandbox.worker_pids()) == 2)
        started = set(sandbox.worker_pids())
        assert sandbox.run(job("    return x + 1")).calls[0].value == 2
        assert set(sandbox.worker_pids()) == started  # the job ran on a prestarted worker


def test_closing_while_workers_prestart_leaves_none_behind() -> None:
    sandbox = LocalSandbox(workers=2)
    sandbox.prestart()
    sandbox.close()
    time.sleep(1.0)  # a start in flight when close() came finishes, sees the pool closed, and stops its worker
    assert sandbox.worker_pids() == []
    assert not sandbox._live


def test_a_backend_that_cannot_start_still_says_so_after_prestart() -> None:
    with BrokenLocal(workers=1, use_bwrap=False, uid=0) as sandbox:
        sandbox.prestart()
        result = sandbox.run(job("    return 1"))
    assert result.sandbox_error and "trivial job" in result.sandbox_error
