"""Large return values compared by equality travel as a sha256; the verdict must not change."""

from __future__ import annotations

import pytest

from ra3bench.expected import load_or_compute
from ra3bench.pipeline import EvalSettings, Evaluator
from ra3bench.records import Sample, Status
from ra3bench.sandbox.local import LocalSandbox
from ra3bench.suites import get_suite

CORRECT = "def string_sequence(n: int) -> str:\n    return ' '.join(str(i) for i in range(n + 1))\n"
WRONG_WHEN_LARGE = (
    "def string_sequence(n: int) -> str:\n"
    "    s = ' '.join(str(i) for i in range(n + 1))\n"
    "    return s if len(s) < 100000 else s[:-1] + 'x'\n"
)


@pytest.fixture(scope="module")
def evaluate(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("RA3BENCH_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    suite = get_suite("humaneval+")
    problem = suite.problem_map()["HumanEval/15"]
    with LocalSandbox(workers=2) as sandbox:
        expectations = load_or_compute(suite, sandbox, [problem])
        evaluator = Evaluator(suite, sandbox, expectations, EvalSettings())
        yield lambda program: evaluator.evaluate(problem, Sample(problem.task_id, 0, program)), expectations
    mp.undo()


def test_large_outputs_are_digested_and_still_judged_exactly(evaluate):
    run, expectations = evaluate
    digests = expectations.get("HumanEval/15", "plus").digests(EvalSettings().limits.digest_min_bytes)
    assert digests, "HumanEval/15 has outputs over 64 KB: they should travel as digests"
    assert run(CORRECT).status is Status.PASS
    verdict = run(WRONG_WHEN_LARGE)
    assert verdict.groups["base"].status is Status.PASS
    assert verdict.groups["plus"].status is Status.FAIL
    assert verdict.groups["plus"].detail == "large return value differs from the expected one"
