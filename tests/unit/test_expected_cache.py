"""Expected outputs are computed once per problem content, then read from the cache."""

from __future__ import annotations

import pytest
from in_memory import CountingSandbox, InMemorySuite

from ra3bench.expected import load_or_compute
from ra3bench.suites.base import Comparison, Problem, TestGroup


def counting_sandbox() -> CountingSandbox:
    return CountingSandbox(lambda args: args[0] + 1)


def tiny_suite(inputs: list) -> InMemorySuite:
    """One problem per input: f(x) = x + 1 on that one input."""
    problems = [
        Problem(f"t/{i}", "", "", "f", "def f(x):\n    return x + 1\n", {"base": TestGroup("base", inputs=[[x]])})
        for i, x in enumerate(inputs)
    ]
    return InMemorySuite("tiny", problems)


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RA3BENCH_CACHE_DIR", str(tmp_path))


def test_second_load_runs_nothing_and_gives_the_same_outputs():
    sandbox = counting_sandbox()
    first = load_or_compute(tiny_suite([1, 2]), sandbox)
    assert sandbox.jobs == 2
    second = load_or_compute(tiny_suite([1, 2]), sandbox)
    assert sandbox.jobs == 2
    assert second.get("t/1", "base").outputs == first.get("t/1", "base").outputs == [3]
    assert second.sha256 == first.sha256


def test_a_changed_problem_is_recomputed_alone():
    sandbox = counting_sandbox()
    load_or_compute(tiny_suite([1, 2]), sandbox)
    changed = load_or_compute(tiny_suite([1, 5]), sandbox)
    assert sandbox.jobs == 3
    assert changed.get("t/1", "base").outputs == [6]


def test_a_damaged_cache_is_recomputed(tmp_path):
    sandbox = counting_sandbox()
    first = load_or_compute(tiny_suite([1]), sandbox)
    first.path.write_bytes(b"garbage")
    load_or_compute(tiny_suite([1]), sandbox)
    assert sandbox.jobs == 2


def test_the_fingerprint_covers_what_the_data_gives():
    """A data set's expected outputs, checker and limits key the verdict cache: a change in how a file is
    read (an output normalised differently, a checker found) never reuses an old verdict."""
    import dataclasses

    from ra3bench.expected import problem_fingerprint
    from ra3bench.suites.base import Comparison, Problem, TestGroup

    group = TestGroup("tests", Comparison.STDIN, [["1\n"]], outputs=["1\n"])
    base = Problem("cf/1", "", "", "", "", {"tests": group}, time_limit_s=2.0)
    variants = [
        dataclasses.replace(base, groups={"tests": dataclasses.replace(group, outputs=["1"])}),
        dataclasses.replace(base, checker="print(1)"),
        dataclasses.replace(base, time_limit_s=1.0),
        dataclasses.replace(base, memory_limit_mb=64),
        dataclasses.replace(base, oracle="tokens_any_case"),
    ]
    prints = {problem_fingerprint(p) for p in [base, *variants]}
    assert len(prints) == 1 + len(variants)
    assert problem_fingerprint(base) == problem_fingerprint(dataclasses.replace(base))


def test_the_cache_follows_xdg_cache_home(tmp_path, monkeypatch):
    from pathlib import Path

    from ra3bench.paths import cache_root

    monkeypatch.delenv("RA3BENCH_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "ra3bench"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # ignored, as the XDG spec says
    assert cache_root() == Path.home() / ".cache" / "ra3bench"
    monkeypatch.setenv("RA3BENCH_CACHE_DIR", str(tmp_path / "own"))
    assert cache_root() == tmp_path / "own"


def test_only_the_problems_asked_are_read_or_computed():
    """The store holds one record per problem: a run of one task reads one record, a later run of more
    computes only the new ones, and the digest names exactly the records a run used."""
    sandbox = counting_sandbox()
    one = load_or_compute(tiny_suite([1, 2, 3]), sandbox, tiny_suite([1, 2, 3]).problems()[:1])
    assert sandbox.jobs == 1 and set(one.tasks) == {"t/0"}
    three = load_or_compute(tiny_suite([1, 2, 3]), sandbox)
    assert sandbox.jobs == 3 and set(three.tasks) == {"t/0", "t/1", "t/2"}
    again = load_or_compute(tiny_suite([1, 2, 3]), sandbox, tiny_suite([1, 2, 3]).problems()[:1])
    assert sandbox.jobs == 3 and again.sha256 == one.sha256 != three.sha256


def _problem(inputs: list, **changes) -> Problem:
    import dataclasses

    group = TestGroup("base", Comparison.VALUES, inputs)
    problem = Problem("p/1", "", "", "f", "def f(*a):\n    return a\n", {"base": group})
    return dataclasses.replace(problem, **changes)


def test_the_fingerprint_tells_apart_every_input_the_reference_would_see():
    """Types as Python sees them: tuple or list, 1 / 1.0 / True, 0.0 / -0.0, any int, any text; and every
    other part of the problem and its groups."""
    import dataclasses

    from ra3bench.expected import problem_fingerprint

    inputs = [[1, (2, 3), "ab", 0.0, False, 2**5000, {"k": [None]}]]
    variants = [
        [[1.0, (2, 3), "ab", 0.0, False, 2**5000, {"k": [None]}]],
        [[True, (2, 3), "ab", 0.0, False, 2**5000, {"k": [None]}]],
        [[1, [2, 3], "ab", 0.0, False, 2**5000, {"k": [None]}]],
        [[1, (2, 3), "ac", 0.0, False, 2**5000, {"k": [None]}]],
        [[1, (2, 3), "ab", -0.0, False, 2**5000, {"k": [None]}]],
        [[1, (2, 3), "ab", 0.0, 0, 2**5000, {"k": [None]}]],
        [[1, (2, 3), "ab", 0.0, False, 2**5000 + 1, {"k": [None]}]],
        [[1, (2, 3), "ab", 0.0, False, 2**5000, {"k": [False]}]],
        [[1, (2, 3), "ab", 0.0, False, 2**5000, {"k": [None]}], []],
    ]
    base = _problem(inputs)
    group = base.groups["base"]
    problems = [base, *(_problem(v) for v in variants)]
    problems += [
        dataclasses.replace(base, reference="def f(*a):\n    return 1\n"),
        dataclasses.replace(base, entry_point="g"),
        dataclasses.replace(base, atol=1e-6),
        dataclasses.replace(base, oracle="tokens_any_case"),
        dataclasses.replace(base, checker="print(1)"),
        dataclasses.replace(base, time_limit_s=1.0),
        dataclasses.replace(base, memory_limit_mb=64),
        dataclasses.replace(base, groups={"base": dataclasses.replace(group, name="plus")}),
        dataclasses.replace(base, groups={"base": dataclasses.replace(group, comparison=Comparison.REPLAY)}),
        dataclasses.replace(base, groups={"base": dataclasses.replace(group, check="assert True")}),
        dataclasses.replace(base, groups={"base": dataclasses.replace(group, outputs=[[1]])}),
        dataclasses.replace(base, groups={"base": dataclasses.replace(group, outputs=[(1,)])}),
    ]
    prints = [problem_fingerprint(p) for p in problems]
    assert len(set(prints)) == len(problems)
    assert problem_fingerprint(_problem(inputs)) == prints[0]


def test_the_fingerprint_depends_on_content_not_on_which_objects_are_shared():
    import copy

    from ra3bench.expected import problem_fingerprint

    text, row = "x" * 50, [1, 2]
    shared = _problem([[text, text, row], [row]])
    copied = _problem([[text, "".join(["x"] * 50), row], [copy.copy(row)]])
    assert problem_fingerprint(shared) == problem_fingerprint(copied)


def test_the_fingerprint_is_the_same_in_another_process():
    """Hash randomisation (PYTHONHASHSEED) must not change it for data read from JSON (dicts included)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from ra3bench.expected import problem_fingerprint

    code = (
        "from ra3bench.expected import problem_fingerprint;"
        "from tests.unit.test_expected_cache import _problem;"
        "print(problem_fingerprint(_problem([[{'b': 1, 'a': [2.5, 'z']}, 'text', None]])))"
    )
    expected = problem_fingerprint(_problem([[{"b": 1, "a": [2.5, "z"]}, "text", None]]))
    for seed in ("1", "2"):
        helpers = os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": helpers}
        run = [sys.executable, "-c", code]
        out = subprocess.run(run, env=env, cwd=Path(__file__).parents[2], capture_output=True, text=True, check=True)
        assert out.stdout.strip() == expected


def test_content_the_pickle_refuses_is_still_fingerprinted():
    from ra3bench.expected import problem_fingerprint

    cyclic: list = [1]
    cyclic.append(cyclic)
    deep: list = []
    for _ in range(5000):
        deep = [deep]
    for problem in (_problem([[cyclic]]), _problem([[lambda: 1]]), _problem([[deep]])):
        fingerprint = problem_fingerprint(problem)
        assert len(fingerprint) == 64 and fingerprint == problem_fingerprint(problem)
    assert problem_fingerprint(_problem([[[1, [1]]]])) != problem_fingerprint(_problem([[cyclic]]))
