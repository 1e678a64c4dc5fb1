"""`ra3bench compare` and `report` with several runs per side, on real run folders.

Two "methods", three runs each: three Llama-3-8B-Instruct variants and three Llama-3-70B-Instruct
variants (layer-repeat / merge experiments, llama3-exp), their HumanEval+ samples judged in the
local sandbox on the first 20 problems. The three variants of a size stand for three training
seeds of a method: runs of the same recipe that differ problem by problem.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

DATA = Path(os.environ["RA3BENCH_DATA_DIR"])
SAMPLES = DATA / "samples/evalplus/llama3-exp"
METHODS = {
    "8b": ["8b-instruct-base", "8b-instruct-repeatlittle", "8b-instruct-repeatlots"],
    "70b": ["70B-instruct-base", "70-g", "70-idk"],
}
EVALUATE = ["evaluate", "--suite", "humaneval+", "--suite-version", "v0.1.9", "--sandbox", "local", "--limit", "20"]


def ra3bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ra3bench.cli.main", *args], capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="module")
def seeds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """root/<method>/seed-<i>: one evaluation run folder per variant, as `train --seeds` lays out runs."""
    root = tmp_path_factory.mktemp("compare-seeds")
    for method, variants in METHODS.items():
        for i, variant in enumerate(variants):
            out = root / method / f"seed-{i}"
            done = ra3bench(*EVALUATE, "--samples", str(SAMPLES / variant / "samples.jsonl.gz"), "--out", str(out))
            assert done.returncode == 0, done.stderr[-2000:]
    return root


def compare_json(*args: str) -> tuple[int, dict]:
    done = ra3bench("compare", *args, "--format", "json")
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, json.loads(done.stdout)


def rates(folder: Path, group: str) -> np.ndarray:
    """Per-problem pass rates from a run's verdicts (n = 1: 0 or 1), by task number."""
    verdicts = [json.loads(line) for line in (folder / "verdicts.jsonl").read_text().splitlines()]
    groups = ["base", "plus"][: ["base", "plus"].index(group) + 1]
    last = {v["task_id"]: v for v in verdicts}
    order = sorted(last, key=lambda t: int(t.split("/")[1]))
    return np.array([float(all(last[t]["groups"][g] == "pass" for g in groups)) for t in order])


def test_two_methods_over_three_seeds_get_the_hierarchical_interval(seeds):
    from ra3bench.report.hierarchical import hierarchical_bootstrap_ci

    code, report = compare_json(str(seeds / "8b"), str(seeds / "70b"))
    assert [(r["group"], r["k"]) for r in report["rows"]] == [("base", 1), ("plus", 1)]
    for row in report["rows"]:
        assert (row["n_seeds_base"], row["n_seeds_candidate"], row["n_problems"]) == (3, 3, 20)
        a = [rates(seeds / "8b" / f"seed-{i}", row["group"]) for i in range(3)]
        b = [rates(seeds / "70b" / f"seed-{i}", row["group"]) for i in range(3)]
        expected = hierarchical_bootstrap_ci(a, b)
        assert row["delta"] == pytest.approx(float(np.mean(b) - np.mean(a)))
        assert (row["ci_low"], row["ci_high"], row["p_value"]) == pytest.approx(
            (expected.ci_low, expected.ci_high, expected.p_value)
        )
        assert row["test"] == "hierarchical bootstrap over seeds and problems" and row["lost"] == []
        verdict = (
            "no significant change" if expected.p_value >= 0.05 else ("improvement", "regression")[row["delta"] < 0]
        )
        assert row["verdict"] == verdict
    assert code == int(any(r["verdict"] == "regression" for r in report["rows"]))

    # the same runs named one by one after --vs give the same numbers; a side may be one run
    _, named = compare_json(*(str(seeds / "8b" / f"seed-{i}") for i in range(3)), "--vs", str(seeds / "70b"))
    assert [r["ci_low"] for r in named["rows"]] == [r["ci_low"] for r in report["rows"]]
    _, one_side = compare_json(str(seeds / "8b" / "seed-0"), "--vs", str(seeds / "70b"))
    assert {(r["n_seeds_base"], r["n_seeds_candidate"]) for r in one_side["rows"]} == {(1, 3)}


def test_the_table_says_what_the_interval_rests_on(seeds):
    done = ra3bench("compare", str(seeds / "8b"), str(seeds / "70b"))
    assert done.returncode == 0, done.stderr
    assert "seeds" in done.stdout.splitlines()[3] and "3 vs 3" in done.stdout
    assert "hierarchical bootstrap over seeds" in done.stdout
    assert "humaneval+: 3 seeds vs 3 seeds, 20 problems." in done.stdout
    single = ra3bench("compare", str(seeds / "8b" / "seed-0"), str(seeds / "70b" / "seed-0"))
    assert single.returncode in (0, 1), single.stderr
    assert "1 seed vs 1 seed, 20 problems: the interval covers problem variance only" in single.stdout
    assert "seeds" not in single.stdout.splitlines()[3]  # the two-run table is as it was
    partial = ra3bench("compare", str(seeds / "8b" / "seed-0"), "--vs", str(seeds / "70b"))
    assert "the base's seed variance is not covered (one run)" in partial.stdout


def test_a_seed_measured_otherwise_is_named_in_one_line(seeds, tmp_path):
    odd = tmp_path / "70b-odd"
    shutil.copytree(seeds / "70b", odd)
    manifest = json.loads((odd / "seed-2" / "manifest.json").read_text())
    manifest["settings"]["limits"]["memory_mb"] = 512
    (odd / "seed-2" / "manifest.json").write_text(json.dumps(manifest))
    done = ra3bench("compare", str(seeds / "8b"), str(odd))
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and "Traceback" not in done.stderr
    assert f"candidate seed 3 ({odd / 'seed-2'})" in lines[0] and "memory_mb differs" in lines[0]
    done = ra3bench("compare", str(seeds / "8b"), str(seeds / "8b" / "seed-1"), "--vs", str(seeds / "70b"))
    assert done.returncode == 2 and "is given twice" in done.stderr
    done = ra3bench("compare", str(seeds / "8b"), str(seeds / "70b"), str(seeds / "70b"))
    assert done.returncode == 2 and "--vs" in done.stderr


def test_report_compares_the_methods_over_seeds(seeds, tmp_path):
    out = tmp_path / "report"
    done = ra3bench("report", f"8B={seeds / '8b'}", f"70B={seeds / '70b'}", "--out", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "report of 6 runs" in done.stdout
    md = (out / "report.md").read_text()
    assert "| 8B/seed-0 " in md and "| 70B/seed-2 " in md  # every run's own numbers
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in md.splitlines() if line.startswith("| 70B vs")]
    assert [r[1] for r in rows] == ["humaneval+ base pass@1", "humaneval+ plus pass@1"]
    _, report = compare_json(str(seeds / "8b"), str(seeds / "70b"))
    for row, expected in zip(rows, report["rows"], strict=True):
        assert row[2:4] == ["3 vs 3", "20"] and row[-1] == "seeds and problems"
        assert row[7] == f"[{100 * expected['ci_low']:+.1f}, {100 * expected['ci_high']:+.1f}]"
    # one run each: the report says the interval is conditional on the seed
    again = tmp_path / "again"
    pair = ["report", f"a={seeds / '8b' / 'seed-0'}", f"b={seeds / '70b' / 'seed-0'}", "--out", str(again)]
    assert ra3bench(*pair).returncode == 0
    assert "problems only (one run each: conditional on the seed)" in (again / "report.md").read_text()
