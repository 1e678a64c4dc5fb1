"""``ra3bench train --seeds``: one run per training seed (and per ``--each`` arm), their curves as a seed
mean with a min-max band, pass@k for k > 1 along the curve, and the runs compared over seeds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ra3bench.errors import UsageError
from ra3bench.training.seed_curves import seed_band, seed_label
from ra3bench.training.sweep import Arm, parse_seeds, plan_each, seed_overrides, with_seeds, zip_each


def test_seeds_are_read_as_lists_and_ranges_in_order():
    assert parse_seeds("0,1,2") == [0, 1, 2]
    assert parse_seeds("3-5, 9") == [3, 4, 5, 9]
    for text, message in (("0,x", "'x' is not a seed"), ("5-3", "'5-3' is not a seed"), ("1,0-2", "seed 1 appears")):
        with pytest.raises(UsageError, match=message):
            parse_seeds(text)


def test_each_arm_runs_once_per_seed_seed_by_seed():
    arms = with_seeds(zip_each(["trainer.lr=a:1e-4,b:2e-4"]), [0, 1])
    assert [a.folder for a in arms] == ["a/seed-0", "b/seed-0", "a/seed-1", "b/seed-1"]
    assert arms[1] == Arm("b", ("trainer.lr=2e-4",), 0)
    assert [a.folder for a in with_seeds([Arm("", ())], [7])] == ["seed-7"]


def test_a_seed_sets_run_seed_and_the_trainers_own_seed_where_it_has_one(tmp_path):
    from ra3bench_ntp import NTPTrainer
    from ra3bench_ra3 import RA3Trainer

    assert seed_overrides(NTPTrainer, 3) == ["run.seed=3"]
    assert seed_overrides(RA3Trainer, 3) == ["run.seed=3", "trainer.seed=3"]
    assert seed_overrides(RA3Trainer, None) == []
    plan = plan_each("ra3", None, [f"run.out={tmp_path}"], with_seeds([Arm("", ())], [0, 4]))
    for (arm, overrides, out), seed in zip(plan.runs, (0, 4), strict=True):
        assert out == tmp_path / f"seed-{seed}" and arm.seed == seed
        assert overrides[-3:] == [f"run.seed={seed}", f"trainer.seed={seed}", f"run.out={out}"]
    assert plan.by_label() == {"": [tmp_path / "seed-0", tmp_path / "seed-4"]}


def test_a_seed_set_by_hand_as_well_is_refused_once_with_the_fix(capsys):
    from ra3bench.cli.main import main

    code = main(["train", "--trainer", "ra3", "--seeds", "0,1", "run.seed=3", "--check"])
    assert code == 2 and capsys.readouterr().err.strip().splitlines() == [
        "ra3bench: error: run.seed is set by --seeds; drop the run.seed=... override"
    ]
    code = main(["train", "--trainer", "ra3", "--each", "trainer.seed=a:1,b:2", "--seeds", "0,1", "--check"])
    err = capsys.readouterr().err
    assert code == 2 and "--each [a]: trainer.seed is set by --seeds" in err and "--each [b]" in err
    assert main(["train", "--trainer", "ntp", "--seeds", "0-2", "eval.n=2", "--check"]) == 0
    assert "3 configs check out: seed-0, seed-1, seed-2" in capsys.readouterr().out
    assert main(["train", "--trainer", "ntp", "--seeds", "0,0", "--check"]) == 2
    assert "seed 0 appears twice" in capsys.readouterr().err


def test_k_above_n_is_refused_in_one_line(capsys):
    from ra3bench.cli.main import main

    assert main(["train", "--trainer", "ntp", "eval.n=2", "eval.k=[1,4]", "--check"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "eval.k" in err[0] and "eval.n (2)" in err[0]
    assert main(["train", "--trainer", "ntp", "eval.n=4", "eval.k=[1,2,4]", "--check"]) == 0


def _eval(step: int, value: float, k: int = 1) -> dict:
    return {"kind": "eval", "step": step, "tokens_seen": 100 * step, "wall_time_s": float(step), "suite": "mbpp+",
            "group": "plus", "k": k, "pass_at_k": value, "ci_low": 0.0, "ci_high": 1.0, "n_problems": 10}  # fmt: skip


def test_the_seed_band_is_the_mean_with_the_lowest_and_highest_seed_at_steps_all_seeds_reached():
    one = [_eval(0, 0.1), _eval(5, 0.3), _eval(10, 0.5), {"kind": "train", "step": 5, "loss": 2.0, "tokens_seen": 500}]
    two = [_eval(0, 0.2), _eval(5, 0.2), {"kind": "train", "step": 5, "loss": 1.0, "tokens_seen": 500}]  # stopped
    band = seed_band([one, two])
    evals = [p for p in band if p["kind"] == "eval"]
    assert [p["step"] for p in evals] == [0, 5]  # step 10: only one seed got there
    assert evals[1]["pass_at_k"] == pytest.approx(0.25)
    assert (evals[1]["ci_low"], evals[1]["ci_high"], evals[1]["n_seeds"]) == (0.2, 0.3, 2)
    assert evals[1]["seeds"] == [0.3, 0.2] and evals[1]["band"] == "min-max over seeds"
    assert [p for p in band if p["kind"] == "train"] == [
        {"kind": "train", "step": 5, "loss": 1.5, "tokens_seen": 500.0, "n_seeds": 2}
    ]
    assert seed_band([one]) == one  # a single seed draws as it is
    assert seed_label("ntp", 1) == "ntp" and seed_label("ntp", 3) == "ntp (mean of 3 seeds, band: min-max)"


QUICK = [
    "model.name=tiny-random",
    "data.max_examples=32",
    "data.max_length=128",
    "trainer.steps=3",
    "trainer.batch_size=4",
    "trainer.warmup_steps=0",
    "eval.every=0",
    "eval.limit=3",
    "eval.n=2",
    "eval.k=[1,2]",
    "eval.max_new_tokens=8",
    "eval.sandbox=local",
    "eval.workers=2",
]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two learning rates x two seeds of NTP on a tiny random model: four real training runs."""
    pytest.importorskip("transformers")
    from ra3bench.cli.main import main

    out = tmp_path_factory.mktemp("seeds") / "sweep"
    args = ["train", "--trainer", "ntp", *QUICK, f"run.out={out}", "--each", "trainer.lr=a:1e-4,b:3e-3"]
    with pytest.MonkeyPatch.context() as env:
        env.setenv("RA3BENCH_OFFLINE", "1")
        assert main([*args, "--seeds", "0,1"]) == 0
    return out


def _curve(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "curve.jsonl").read_text().splitlines()]


def test_seeds_train_one_real_run_each_with_pass_at_2_along_the_curve(sweep, capsys):
    losses = {}
    for label, lr in (("a", 1e-4), ("b", 3e-3)):
        for seed in (0, 1):
            run = sweep / label / f"seed-{seed}"
            config = json.loads((run / "manifest.json").read_text())["config"]
            assert (config["run"]["seed"], config["trainer"]["lr"]) == (seed, lr)
            curve = _curve(run)
            losses[label, seed] = [p["loss"] for p in curve if p["kind"] == "train"]
            evals = {(p["step"], p["group"], p["k"]) for p in curve if p["kind"] == "eval"}
            assert evals == {(s, g, k) for s in (0, 3) for g in ("base", "plus") for k in (1, 2)}
    assert losses["a", 0] != losses["a", 1]  # another seed: another init and data order
    assert (sweep / "curves.png").read_bytes().startswith(b"\x89PNG")

    from ra3bench.cli.main import main

    capsys.readouterr()
    args = ["train", "--trainer", "ntp", *QUICK, f"run.out={sweep}", "--each", "trainer.lr=a:1e-4,b:3e-3"]
    assert main([*args, "--seeds", "0,1", "--resume"]) == 0
    assert capsys.readouterr().out.count("finished, kept") == 4
    assert main([*args, "--seeds", "0,1"]) == 2  # without --resume nothing is trained over
    err = capsys.readouterr().err
    assert "[a/seed-0]" in err and "add --resume" in err


def test_the_seed_folders_compare_over_seeds_and_report_as_methods(sweep, tmp_path, capsys):
    from ra3bench.cli.main import main
    from ra3bench.report.base import load_run, per_problem
    from ra3bench.report.hierarchical import hierarchical_bootstrap_ci

    capsys.readouterr()
    assert main(["compare", str(sweep / "a"), str(sweep / "b"), "--format", "json", "--resamples", "2000"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [(r["group"], r["k"]) for r in report["rows"]] == [("base", 1), ("base", 2), ("plus", 1), ("plus", 2)]
    row = report["rows"][3]
    assert (row["n_seeds_base"], row["n_seeds_candidate"], row["n_problems"]) == (2, 2, 3)
    # the numbers are the hierarchical bootstrap of the runs' step-3 evaluations
    runs = {s: [load_run(sweep / s / f"seed-{i}" / "evals/step-000003/mbppplus") for i in (0, 1)] for s in "ab"}
    tasks = sorted(runs["a"][0].tasks(), key=lambda t: int(t.split("/")[1]))
    a, b = ([per_problem(r.counts("plus"), tasks, 2) for r in runs[s]] for s in "ab")
    expected = hierarchical_bootstrap_ci(a, b, n_boot=2000)
    assert (row["delta"], row["ci_low"], row["ci_high"]) == pytest.approx(
        (expected.delta, expected.ci_low, expected.ci_high)
    )

    assert main(["compare", str(sweep / "a/seed-0"), str(sweep / "b/seed-0"), "--step", "0"]) == 0
    table = capsys.readouterr().out
    assert "1 seed vs 1 seed, 3 problems: the interval covers problem variance only" in table
    assert main(["compare", *(str(p) for p in sorted((sweep / "a").glob("seed-*"))), "--vs", str(sweep / "b")]) == 0
    assert "2 seeds vs 2 seeds, 3 problems" in capsys.readouterr().out
    assert main(["compare", str(sweep / "a"), str(sweep / "b"), "--step", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "did not evaluate step 2 (its evaluations: 0, 3)" in err[0]

    out = tmp_path / "report"
    assert main(["report", f"A={sweep / 'a'}", f"B={sweep / 'b'}", "--out", str(out), "--resamples", "500"]) == 0
    md = (out / "report.md").read_text()
    assert "A (mean of 2 seeds, band: min-max)" in md and "## Method comparison" in md
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in md.splitlines() if line.startswith("| B vs A")]
    assert [r[1] for r in rows] == ["mbpp+ base pass@1", "mbpp+ base pass@2", "mbpp+ plus pass@1", "mbpp+ plus pass@2"]
    assert all(r[2] == "2 vs 2" and r[3] == "3" and r[-1] == "seeds and problems" for r in rows)
    assert "at step 3 (the last step every training run evaluated)" in md
