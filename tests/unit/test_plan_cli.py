"""`ra3bench plan` as a user runs it, and what it reads from run folders (planning_runs)."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ra3bench.errors import UsageError
from ra3bench.planning_runs import read_run
from ra3bench.results import host_info

P, N = 60, 4


def ra3bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ra3bench.cli.main", *args], capture_output=True, text=True, timeout=300
    )


def one_clear_line(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def write_eval(folder: Path, seed: int, *, created: dt.datetime | None = None, shift: float = 0.0) -> dict:
    """An MBPP+ run folder of P problems x N samples: base passes with a problem's rate, plus a bit less."""
    rng = np.random.default_rng(seed)
    rates = np.clip(rng.beta(0.4, 0.8, P) + shift, 0, 1)
    folder.mkdir(parents=True)
    verdicts, counts = [], {}
    for i, rate in enumerate(rates):
        task = f"Mbpp/{i + 2}"
        for s in range(N):
            base = rng.random() < rate
            plus = base and rng.random() < 0.9
            verdicts.append(
                {
                    "task_id": task,
                    "sample_index": s,
                    "status": "pass" if plus else "fail",
                    "groups": {"base": "pass" if base else "fail", "plus": "pass" if plus else "fail"},
                    "wall_s": 0.5,
                }
            )
            n, c = counts.get(task, (0, 0))
            counts[task] = (n + 1, c + int(plus))
    created = created or dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=120)
    manifest = {
        "created": created.isoformat(timespec="seconds"),
        "suite": {"suite": "mbpp+", "suite_version": "v0.2.0", "groups": ["base", "plus"]},
        "n": N,
        "host": host_info(),
        "sandbox": {"workers": 2},
    }
    base_rate = np.mean([v["groups"]["base"] == "pass" for v in verdicts])
    plus_rate = sum(c for _, c in counts.values()) / (P * N)
    summary = {
        "suite": "mbpp+",
        "n_problems": P,
        "samples_per_problem": [N],
        "pass_at_k": {"base": {"1": float(base_rate)}, "plus": {"1": float(plus_rate)}},
        "unverifiable": {"excluded_from_scores": False, "tasks": {}},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    (folder / "verdicts.jsonl").write_text("".join(json.dumps(v) + "\n" for v in verdicts))
    (folder / "summary.json").write_text(json.dumps(summary))
    return {"counts": counts, "plus": plus_rate, "base": float(base_rate)}


def write_training(run: Path) -> dict:
    """A training run: step 0 borrowed (no time), step 2 measured (600 s), step 4 read back (0.01 s)."""
    facts = write_eval(run / "evals/step-000004/mbppplus", seed=3)
    rows = []
    for step, seconds, rate in ((0, 0.0, 0.05), (2, 600.0, 0.2), (4, 0.01, facts["plus"])):
        for group in ("base", "plus"):
            rows.append(
                {
                    "kind": "eval",
                    "step": step,
                    "eval_time_s": seconds,
                    "suite": "mbpp+",
                    "group": group,
                    "k": 1,
                    "pass_at_k": rate,
                    "run_dir": f"evals/step-{step:06d}/mbppplus",
                    "n_problems": P,
                    "n_samples": P * N,
                }
            )
        rows.append({"kind": "train", "step": step + 1, "loss": 1.0})
    (run / "curve.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run / "manifest.json").write_text(json.dumps({"kind": "training", "host": host_info()}))
    return facts


def test_an_eval_folder_gives_design_rate_problems_and_speed(tmp_path):
    facts = write_eval(tmp_path / "run", seed=1)
    run = read_run(tmp_path / "run", "mbpp+")
    assert (run.group, run.problems, run.samples) == ("plus", P, N)
    assert run.rate == pytest.approx(facts["plus"]) and run.per_problem == facts["counts"]
    assert read_run(tmp_path / "run", "mbpp+", "base").rate == pytest.approx(facts["base"])
    speed = run.throughput
    assert speed is not None and "file times" in speed.source
    assert speed.seconds_per_sample == pytest.approx(120 / (P * N), rel=0.1)
    assert speed.judging_seconds_per_sample == pytest.approx(0.5 / 2)
    assert speed.same_machine()


def test_a_copied_folder_has_no_speed_and_a_wrong_suite_is_named(tmp_path):
    old = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=30)
    write_eval(tmp_path / "copy", seed=1, created=old)
    assert read_run(tmp_path / "copy", "mbpp+").throughput is None
    with pytest.raises(UsageError, match=r"is a mbpp\+ run; plan --suite mbpp\+"):
        read_run(tmp_path / "copy", "humaneval+")
    with pytest.raises(UsageError, match="no group 'all'"):
        read_run(tmp_path / "copy", "mbpp+", "all")


def test_a_training_run_gives_its_latest_point_and_the_measured_points_speed(tmp_path):
    facts = write_training(tmp_path / "train")
    run = read_run(tmp_path / "train", "mbpp+")
    assert "step 4" in run.what and run.rate == pytest.approx(facts["plus"])
    assert run.per_problem == facts["counts"]  # the step's evaluation folder is there
    speed = run.throughput
    assert speed is not None and "1 evaluation point(s)" in speed.source  # the 0 s and 0.01 s points left out
    assert speed.seconds_per_sample == pytest.approx(600 / (P * N))
    assert speed.judging_seconds_per_sample == pytest.approx(0.25)
    with pytest.raises(UsageError, match=r"no humaneval\+ evaluation in its curve.jsonl \(it has mbpp\+\)"):
        read_run(tmp_path / "train", "humaneval+")


def test_plan_json_from_a_training_run(tmp_path):
    write_training(tmp_path / "train")
    result = ra3bench(
        "plan", "--suite", "mbpp+", "--from-run", str(tmp_path / "train"), "--effect", "5",
        "--seeds", "0,1,2", "--points", "3", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["design"]["problems"] == P and plan["design"]["samples"] == N and plan["design"]["seeds"] == 3
    assert plan["suite_problems"] == 378 and plan["group"] == "plus"
    assert plan["sources"]["concentration"].startswith(f"fitted to {P} per-problem results")
    assert plan["sources"]["seed_sd"].startswith("default")
    methods = {line["method"] for line in plan["results"]}
    assert methods == {"closed form"}
    quantities = [line["quantity"] for line in plan["results"]]
    assert "minimum detectable effect" in quantities and "power at 5.0 pp" in quantities
    cost = plan["cost"]
    assert cost["point_s"] == pytest.approx(P * N * 600 / (P * N))
    assert cost["total_s"] == pytest.approx(cost["point_s"] * 3 * 3 * 2) and cost["runs"] == 6


def test_plan_table_with_simulation_and_seeds_from_runs(tmp_path):
    write_eval(tmp_path / "seed-0", seed=1)
    write_eval(tmp_path / "seed-1", seed=1, shift=0.1)
    result = ra3bench(
        "plan", "--suite", "mbpp+", "--from-run", str(tmp_path / "seed-0"), str(tmp_path / "seed-1"),
        "--simulate", "200",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "simulation (200 experiments)" in out and "closed form" in out
    assert "spread of 2 runs' means, net of sampling noise" in out
    assert "2 seed(s) per method" in out and "cost:" in out and "one evaluation point" in out


def test_plan_without_a_run_says_it_cannot_cost(tmp_path):
    result = ra3bench("plan", "--suite", "humaneval+", "--base-rate", "30", "-n", "10", "--seeds", "3")
    assert result.returncode == 0, result.stderr
    assert "164 problems x n=10 samples, 3 seed(s)" in result.stdout
    assert "cost: not estimated, no measured run" in result.stdout


def test_plan_bad_input_is_one_line():
    one_clear_line(ra3bench("plan", "--suite", "mbpp+"), "--base-rate")
    one_clear_line(ra3bench("plan", "--suite", "mbpp+", "--base-rate", "20", "--problems", "999"), "has 378 problems")
    one_clear_line(ra3bench("plan", "--suite", "mbpp+", "--base-rate", "20", "--seeds", "a,b"), "--seeds")
    one_clear_line(ra3bench("plan", "--suite", "mbpp+", "--base-rate", "0"), "base rate")
    one_clear_line(ra3bench("plan", "--suite", "mbpp+", "--base-rate", "20", "--effect", "-1"), "--effect")
    one_clear_line(ra3bench("plan", "--suite", "mbpp+", "--from-run", "/nonexistent"), "no such folder")


def test_plan_help_ends_with_examples():
    text = ra3bench("plan", "--help").stdout
    assert "examples:" in text and "ra3bench plan --suite" in text
