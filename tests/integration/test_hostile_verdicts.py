"""Hostile programs through the whole judge: none may be scored `pass`, each gets its status.

Every program targets HumanEval+/0 (``has_close_elements``) and is judged end to end: local
sandbox, expected outputs from the reference, trusted comparison, timeout re-run.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import pytest

from ra3bench.expected import load_or_compute
from ra3bench.judge import TimePolicy
from ra3bench.pipeline import EvalSettings, Evaluator
from ra3bench.records import Sample, Status
from ra3bench.sandbox.base import Limits
from ra3bench.sandbox.local import LocalSandbox
from ra3bench.suites import get_suite

SECRET = f"s3cr3t-{uuid.uuid4().hex}"
PWNED = f"/tmp/ra3bench-pwned-{uuid.uuid4().hex}"
SIGNATURE = "def has_close_elements(numbers, threshold):\n"
CORRECT_BODY = "    return any(abs(a - b) < threshold for i, a in enumerate(numbers) for b in numbers[i + 1:])\n"


@pytest.fixture(scope="module")
def judge(tmp_path_factory):
    os.environ["RA3BENCH_TEST_SECRET"] = SECRET  # set before the sandbox starts: it must not leak in
    cache = tmp_path_factory.mktemp("cache")
    os.environ["RA3BENCH_CACHE_DIR"] = str(cache)
    suite = get_suite("humaneval+")
    problem = suite.problem_map()["HumanEval/0"]
    sandbox = LocalSandbox(workers=2)
    expectations = load_or_compute(suite, sandbox, [problem])
    settings = EvalSettings(limits=Limits(memory_mb=1024), time_policy=TimePolicy(floor_s=1.0, factor=4.0))
    evaluator = Evaluator(suite, sandbox, expectations, settings)

    def run(program: str):
        return evaluator.evaluate(problem, Sample(problem.task_id, 0, program))

    yield run, suite, expectations
    sandbox.close()


HOSTILE = {
    "exit(0) before the tests": ("import sys\nsys.exit(0)\n" + SIGNATURE + CORRECT_BODY, {Status.ERROR}),
    "os._exit(0) before the tests": ("import os\nos._exit(0)\n" + SIGNATURE + CORRECT_BODY, {Status.ERROR}),
    "exit(0) during a test": (SIGNATURE + "    raise SystemExit(0)\n", {Status.ERROR}),
    "os._exit(0) during a test": (SIGNATURE + "    import os\n    os._exit(0)\n", {Status.ERROR}),
    "__eq__ always True": (
        "class Yes:\n    def __eq__(self, other): return True\n    def __ne__(self, other): return False\n"
        + SIGNATURE
        + "    return Yes()\n",
        {Status.FAIL},
    ),
    "bool subclass with __eq__ always True": (
        "class Yes(int):\n    def __eq__(self, other): return True\n    __hash__ = int.__hash__\n"
        + SIGNATURE
        + "    return Yes(1)\n",
        {Status.FAIL},
    ),
    "prints fake success": (
        SIGNATURE + "    print('All tests passed!')\n    print('{\"status\": \"pass\"}')\n    return None\n",
        {Status.FAIL},
    ),
    "monkeypatches builtins": (
        "import builtins, json\nbuiltins.isinstance = lambda *a: True\nbuiltins.type = lambda *a: bool\n"
        "json.dumps = lambda *a, **k: 'true'\nbuiltins.AssertionError = type('Nope', (Exception,), {})\n"
        + SIGNATURE
        + "    return 'whatever'\n",
        {Status.FAIL, Status.ERROR},
    ),
    "infinite loop": (SIGNATURE + "    while True:\n        pass\n", {Status.TIMEOUT}),
    "memory bomb": (SIGNATURE + "    x = []\n    while True:\n        x.append(bytearray(1 << 30))\n", {Status.MEMORY}),
    # 64 MB at a time: it hits the 1 GB limit, or the 1 s time limit first on a loaded machine
    "growing memory bomb": (
        SIGNATURE + "    x = []\n    while True:\n        x.append(bytearray(1 << 26))\n",
        {Status.MEMORY, Status.TIMEOUT},
    ),
    "fork bomb": (
        "import os\n"
        + SIGNATURE
        + "    while True:\n        try:\n            os.fork()\n        except OSError:\n            pass\n",
        {Status.TIMEOUT, Status.ERROR, Status.MEMORY},
    ),
    "writes outside its temp dir": (
        SIGNATURE + f"    open({PWNED!r}, 'w').write('pwned')\n    return 'pwned'\n",
        {Status.FAIL, Status.ERROR},
    ),
    "reads the parent's environment": (
        SIGNATURE + "    import os\n    return os.environ.get('RA3BENCH_TEST_SECRET', 'none')\n",
        {Status.FAIL},
    ),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_program_is_contained_and_classified(judge, name):
    run, _, _ = judge
    program, allowed = HOSTILE[name]
    verdict = run(program)
    assert verdict.status is not Status.PASS
    assert verdict.status in allowed, (verdict.status, verdict.groups["base"].detail)
    if shutil.which("bwrap"):  # without bubblewrap the local sandbox shares the host's /tmp (docs/sandbox.md)
        assert not Path(PWNED).exists()
    assert SECRET not in str(verdict.to_json())


def test_a_correct_program_passes_so_the_hostile_failures_mean_something(judge):
    run, _, _ = judge
    verdict = run("from typing import List\n" + SIGNATURE + CORRECT_BODY)
    assert verdict.status is Status.PASS, verdict.groups
    assert set(verdict.groups) == {"base", "plus"}


def test_reading_the_data_set_or_expected_outputs_to_cheat_fails(judge):
    """A program that finds the canonical solution (data file) or the expected outputs must not pass."""
    run, suite, expectations = judge
    if shutil.which("bwrap") is None:
        pytest.skip("the local sandbox without bubblewrap cannot hide host files (use the docker sandbox)")
    cheat = (
        "import gzip, json\n"
        f"rows = [json.loads(l) for l in gzip.open({str(suite.path())!r})]\n"
        "row = next(r for r in rows if r['task_id'] == 'HumanEval/0')\n"
        "exec(row['prompt'] + row['canonical_solution'])\n"
    )
    verdict = run(cheat)
    assert verdict.status is Status.ERROR, verdict.groups["base"].detail
    peek = f"data = open({str(expectations.path)!r}, 'rb').read()\n" + SIGNATURE + "    return data\n"
    assert run(peek).status is Status.ERROR


def test_programs_compile_as_plain_python_without_the_harness_future_flags(judge):
    """`List` used in annotations but never imported fails at definition time, as in CPython."""
    run, _, _ = judge
    verdict = run("def has_close_elements(numbers: List[float], threshold: float) -> bool:\n" + CORRECT_BODY)
    assert verdict.status is Status.ERROR
    assert "NameError" in verdict.groups["base"].detail
