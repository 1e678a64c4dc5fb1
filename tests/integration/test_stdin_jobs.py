"""Stdin jobs (competitive programming) and ``Class.method`` entry points, in the local sandbox.

The docker tests import these too (``test_docker_sandbox.py``), against a ``DockerSandbox``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from test_local_sandbox import FAST, job, make_sandbox, statuses, values

from ra3bench.sandbox.base import Job, Limits
from ra3bench.sandbox.local import LocalSandbox


@pytest.fixture(scope="module", params=["bwrap", "plain"])
def sandbox(request: pytest.FixtureRequest) -> Iterator[LocalSandbox]:
    sb = make_sandbox(request.param)
    try:
        yield sb
    finally:
        sb.close()


def stdin_job(program: str, inputs: list[str], limit: float = 2.0, **kw: object) -> Job:
    return Job(
        program=program,
        calls=[[text] for text in inputs],
        time_limits_s=[limit] * len(inputs),
        stdin=True,
        limits=kw.pop("limits", FAST),  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )


SUM = "import sys\na, b = map(int, sys.stdin.read().split())\nprint(a + b)\n"


def test_each_test_reads_its_own_real_stdin(sandbox: LocalSandbox) -> None:
    result = sandbox.run(stdin_job(SUM, ["1 2\n", "40 2"]))
    assert result.load.status.value == "ok"
    assert statuses(result) == ["ok", "ok"]
    assert values(result) == ["3\n", "42\n"]


def test_input_and_low_level_reads_and_exit_zero_work(sandbox: LocalSandbox) -> None:
    low_level = "import os\nos.write(1, os.read(0, 100).upper())\n"  # the real fds 0 and 1, not mocks
    with_input = "n = int(input())\nprint(n * 2, input())\nexit(0)\n"
    result = sandbox.run(stdin_job(low_level, ["abc\n"]))
    assert statuses(result) == ["ok"] and values(result) == ["ABC\n"]
    result = sandbox.run(stdin_job(with_input, ["21\nabc\n"]))
    assert statuses(result) == ["ok"] and values(result) == ["42 abc\n"]


def test_failures_are_classified(sandbox: LocalSandbox) -> None:
    cases = {
        "raise ValueError('x')\n": "error",
        "import sys\nsys.exit(3)\n": "error",
        "while True:\n    pass\n": "timeout",
        "x = bytearray(3 << 30)\n": "memory",
        "import os\nos.kill(os.getpid(), 9)\n": "error",
    }
    for program, expected in cases.items():
        result = sandbox.run(stdin_job(program, ["\n"], limit=0.5))
        assert statuses(result) == [expected], (program, result.calls[0])


def test_syntax_error_is_a_load_status_and_nothing_runs(sandbox: LocalSandbox) -> None:
    result = sandbox.run(stdin_job("print(1\n", ["\n", "\n"]))
    assert result.load.status.value == "syntax"
    assert statuses(result) == ["missing", "missing"]


def test_fail_fast_stops_at_the_first_failed_test_and_max_timeouts_bounds_the_rest(sandbox: LocalSandbox) -> None:
    program = "n = int(input())\nwhile n:\n    pass\nprint('done')\n"
    fast = sandbox.run(stdin_job(program, ["0", "1", "0"], limit=0.3))
    assert statuses(fast) == ["ok", "timeout", "missing"]
    slow = sandbox.run(stdin_job(program, ["1", "0", "1", "1", "0"], limit=0.3, fail_fast=False, max_timeouts=2))
    assert statuses(slow) == ["timeout", "ok", "timeout", "missing", "missing"]


def test_deep_recursion_with_a_raised_limit_works(sandbox: LocalSandbox) -> None:
    program = (
        "import sys\nsys.setrecursionlimit(10**6)\n"
        "def depth(n):\n    return 0 if n == 0 else 1 + depth(n - 1)\n"
        "print(depth(int(input())))\n"
    )
    result = sandbox.run(stdin_job(program, ["100000"], limit=5.0))
    assert statuses(result) == ["ok"] and values(result) == ["100000\n"]


def test_an_answer_over_the_value_limit_is_an_error(sandbox: LocalSandbox) -> None:
    limits = Limits(memory_mb=1024, load_time_s=2.0, value_bytes=1 << 16)
    result = sandbox.run(stdin_job("print('x' * 100000)\n", ["\n"], limits=limits))
    assert statuses(result) == ["error"]


def test_a_background_child_holding_the_pipe_does_not_stall_the_test(sandbox: LocalSandbox) -> None:
    program = "import os, time\nif os.fork() == 0:\n    time.sleep(30)\nprint('parent done')\n"
    start = time.monotonic()
    result = sandbox.run(stdin_job(program, ["\n"], limit=5.0))
    assert statuses(result) == ["ok"] and values(result) == ["parent done\n"]
    assert time.monotonic() - start < 4


def test_class_method_entry_points_get_a_fresh_instance_per_call(sandbox: LocalSandbox) -> None:
    program = (
        "class Solution:\n"
        "    def __init__(self):\n        self.calls = 0\n"
        "    def twoSum(self, nums, target):\n"
        "        self.calls += 1\n"
        "        seen = {}\n"
        "        for i, x in enumerate(nums):\n"
        "            if target - x in seen:\n                return [seen[target - x], i, self.calls]\n"
        "            seen[x] = i\n"
    )
    calls = [[[2, 7, 11, 15], 9], [[3, 2, 4], 6]]
    result = sandbox.run(job(program, calls, entry_point="Solution.twoSum"))
    assert statuses(result) == ["ok", "ok"]
    assert values(result) == [[0, 1, 1], [1, 2, 1]]
    missing = sandbox.run(job("x = 1\n", [[1]], entry_point="Solution.twoSum"))
    assert statuses(missing) == ["error"]


# ---- through the judge: a stdin problem and a LeetCode-style problem whose outputs the data gives


def _evaluate(sandbox: LocalSandbox, problem: object, programs: dict[str, str]) -> dict[str, tuple[str, int]]:
    from ra3bench.expected import Expectations, from_data
    from ra3bench.pipeline import EvalSettings, Evaluator
    from ra3bench.records import Sample

    expectations = Expectations(key="test", path=None, sha256="", tasks={problem.task_id: from_data(problem)})  # type: ignore[attr-defined]
    evaluator = Evaluator(None, sandbox, expectations, EvalSettings(fail_fast=False))  # type: ignore[arg-type]
    out = {}
    for name, program in programs.items():
        verdict = evaluator.evaluate(problem, Sample(problem.task_id, 0, program))  # type: ignore[arg-type]
        group = next(iter(verdict.groups.values()))
        out[name] = (verdict.status.value, group.n_passed)
    return out


def test_a_stdin_problem_is_judged_pass_fail_timeout_memory_error(sandbox: LocalSandbox) -> None:
    from ra3bench.suites.base import Comparison, Problem, TestGroup

    inputs = ["3\n1 2 3\n", "2\n10 -4\n", "1\n0.5\n"]
    problem = Problem(
        task_id="cf/1",
        prompt="",
        instruction="",
        entry_point="",
        reference="",
        groups={
            "tests": TestGroup(
                "tests", Comparison.STDIN, inputs=[[t] for t in inputs], outputs=["6", "6\n", "0.50000001"]
            )
        },
        time_limit_s=0.5,
        memory_limit_mb=256,
    )
    programs = {
        "right": "input()\nprint(sum(map(float, input().split())))\n",  # 6.0 for 6: within the tolerance
        "wrong": "input()\nprint(max(map(float, input().split())))\n",  # right only on the last test
        "slow": "n = int(input())\nwhile n < 3:\n    pass\nprint(6)\n",
        "hungry": "n = int(input())\nx = bytearray(1 << 30) if n == 2 else b''\ninput()\nprint(6)\n",
        "crash": "raise SystemExit(input())\n",
    }
    verdicts = _evaluate(sandbox, problem, programs)
    assert verdicts == {
        "right": ("pass", 3),
        "wrong": ("fail", 1),
        "slow": ("timeout", 1),
        "hungry": ("memory", 1),
        "crash": ("error", 0),
    }


def test_a_leetcode_style_problem_uses_the_lcb_call_rule(sandbox: LocalSandbox) -> None:
    from ra3bench.suites.base import Comparison, Problem, TestGroup

    problem = Problem(
        task_id="lc/1",
        prompt="",
        instruction="",
        entry_point="Solution.pair",
        reference="",
        groups={"public": TestGroup("public", Comparison.VALUES, inputs=[[1, 2], [3, 4]], outputs=[[1, 2], [3, 4]])},
        oracle="lcb_call",
    )
    programs = {
        "list": "class Solution:\n    def pair(self, a, b):\n        return [a, b]\n",
        "tuple": "class Solution:\n    def pair(self, a, b):\n        return (a, b)\n",  # a top-level tuple is a list
        "wrong": "class Solution:\n    def pair(self, a, b):\n        return [b, a]\n",
        "no_class": "def pair(a, b):\n    return [a, b]\n",
    }
    verdicts = _evaluate(sandbox, problem, programs)
    assert verdicts == {"list": ("pass", 2), "tuple": ("pass", 2), "wrong": ("fail", 0), "no_class": ("error", 0)}


def test_a_problems_own_checker_accepts_any_valid_answer(sandbox: LocalSandbox) -> None:
    """Several valid answers: the checker (data-set code, run in the sandbox) decides, not the expected text."""
    from ra3bench.suites.base import Comparison, Problem, TestGroup

    checker = (
        "import sys\n"
        "n = int(open(sys.argv[1]).read())\n"
        "answer = open(sys.argv[3]).read().split()\n"
        "ok = len(answer) == 1 and answer[0].lstrip('-').isdigit() and 1 < int(answer[0]) < n "
        "and n % int(answer[0]) == 0\n"
        "print(1 if ok else 0)\n"
    )
    problem = Problem(
        task_id="cf/divisor",
        prompt="",
        instruction="",
        entry_point="",
        reference="",
        groups={"tests": TestGroup("tests", Comparison.STDIN, inputs=[["12\n"], ["15\n"]], outputs=["2", "3"])},
        checker=checker,
        time_limit_s=1.0,
    )
    programs = {
        "the expected one": "n = int(input())\nprint(min(d for d in range(2, n) if n % d == 0))\n",
        "another valid one": "n = int(input())\nprint(max(d for d in range(2, n) if n % d == 0))\n",
        "invalid": "print(7)\n",
    }
    verdicts = _evaluate(sandbox, problem, programs)
    assert verdicts == {"the expected one": ("pass", 2), "another valid one": ("pass", 2), "invalid": ("fail", 0)}
    broken = Problem(**{**problem.__dict__, "checker": "raise SystemExit(2)\n"})
    assert _evaluate(sandbox, broken, {"valid": programs["another valid one"]}) == {"valid": ("fail", 0)}


def test_output_of_a_thread_the_program_never_joins_is_kept(sandbox: LocalSandbox) -> None:
    """As `python3` does at exit: wait for non-daemon threads, then run atexit handlers."""
    program = (
        "import atexit, threading, time\n"
        "def main():\n    time.sleep(0.2)\n    print(int(input()) * 2)\n"
        "atexit.register(lambda: print('bye'))\n"
        "threading.Thread(target=main).start()\n"
    )
    result = sandbox.run(stdin_job(program, ["21\n"]))
    assert statuses(result) == ["ok"] and values(result) == ["42\nbye\n"]
    stuck = "import threading, time\nthreading.Thread(target=lambda: time.sleep(60)).start()\nprint(1)\n"
    assert statuses(sandbox.run(stdin_job(stuck, ["\n"], limit=0.5))) == ["timeout"]
