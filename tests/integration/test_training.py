"""The training core on CPU with a tiny config model: NTP learns, the curve is complete, resume
reproduces an uninterrupted run, plugins from outside register, config errors come all at once."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("transformers")

from ra3bench_ntp import NTPTrainer

from ra3bench.cli.main import main
from ra3bench.training.runner import train

REPO = Path(__file__).resolve().parents[2]
STEPS = 24
QUICK = [
    "model.name=tiny-random",
    "data.max_examples=32",
    "data.max_length=128",
    f"trainer.steps={STEPS}",
    "trainer.batch_size=4",
    "trainer.lr=3e-3",
    "trainer.warmup_steps=2",
    "eval.every=10",
    "eval.limit=2",
    "eval.n=1",
    "eval.max_new_tokens=8",
    "eval.sandbox=local",
    "eval.workers=2",
]


@pytest.fixture
def private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("RA3BENCH_OFFLINE", "1")
    monkeypatch.setenv("RA3BENCH_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "training-cache"))


def curve(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "curve.jsonl").read_text().splitlines()]


def losses(run_dir: Path) -> dict[int, float]:
    return {p["step"]: p["loss"] for p in curve(run_dir) if p["kind"] == "train"}


def test_ntp_learns_and_is_measured_at_0_every_n_and_the_end(private_cache, tmp_path):
    run_dir = train("ntp", None, [*QUICK, f"run.out={tmp_path / 'run'}"])
    loss = losses(run_dir)
    assert sorted(loss) == list(range(1, STEPS + 1))
    first, last = sum(loss[s] for s in (1, 2, 3)) / 3, sum(loss[s] for s in (22, 23, 24)) / 3
    assert last < first - 0.5, (first, last)
    evals = [p for p in curve(run_dir) if p["kind"] == "eval"]
    assert sorted({p["step"] for p in evals}) == [0, 10, 20, 24]
    assert {(p["suite"], p["group"], p["k"]) for p in evals} == {("mbpp+", "base", 1), ("mbpp+", "plus", 1)}
    for point in evals:  # each point traces back to an ordinary run folder with its manifest
        manifest = json.loads((run_dir / point["run_dir"] / "manifest.json").read_text())
        assert manifest["training_checkpoint"] == f"ntp@step{point['step']}"
        assert manifest["suite"]["suite"] == "mbpp+" and len(manifest["tasks"]) == 2
        assert point["eval_time_s"] > 0
    # evaluation time is not training time: the train clock does not jump at evaluations
    assert (run_dir / "curves.png").stat().st_size > 10_000
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["trainer"] == "ntp" and manifest["data"]["source"] == "mbpp-train"
    assert manifest["train_time_s"] > 0 and manifest["eval_time_s"] > 0
    # MBPP+ problems that are in the MBPP training split are never evaluated
    excluded = manifest["evaluation"]["suites"]["mbpp+"]["excluded_training_tasks"]
    tasks = json.loads((run_dir / "evals/step-000000/mbppplus/manifest.json").read_text())["tasks"]
    assert not set(excluded) & set(tasks)
    assert (run_dir / "config.yaml").read_text().count("steps: 24") == 1


class DiesAtStep13(NTPTrainer):
    """NTP killed after its step-12 checkpoint, as a machine going down would."""

    def train(self, ctx):
        log = ctx.log

        def dying_log(step, tokens_seen, **metrics):
            if step == 13:
                raise KeyboardInterrupt
            log(step, tokens_seen, **metrics)

        ctx.log = dying_log
        super().train(ctx)


def test_resuming_from_a_mid_run_checkpoint_reaches_the_same_loss(private_cache, tmp_path):
    straight = train("ntp", None, [*QUICK, f"run.out={tmp_path / 'straight'}"])
    overrides = [*QUICK, f"run.out={tmp_path / 'resumed'}", "run.save_every=12"]
    with pytest.raises(KeyboardInterrupt):
        train(f"{__name__}:DiesAtStep13", None, overrides)
    assert (tmp_path / "resumed/checkpoints/LATEST").read_text().strip() == "step-000012"
    started = json.loads((tmp_path / "resumed/manifest.json").read_text())
    resumed = train("ntp", None, overrides, resume=True)
    manifest = json.loads((resumed / "manifest.json").read_text())
    # the manifest is the one the run started with, plus the session that resumed it
    assert manifest["created"] == started["created"] and manifest["code"] == started["code"]
    assert len(manifest["resumes"]) == 1 and manifest["resumes"][0]["at"] >= started["created"]
    # evaluation time before the kill (steps 0 and 10) still counts
    measured = {(p["step"], p["suite"]): p["eval_time_s"] for p in curve(resumed) if p["kind"] == "eval"}
    assert manifest["eval_time_s"] >= 0.95 * sum(measured.values())
    expected, got = losses(straight), losses(resumed)
    assert sorted(got) == sorted(expected)  # no step twice, none missing
    assert got[STEPS] == pytest.approx(expected[STEPS], abs=1e-4)
    assert got[13] == pytest.approx(expected[13], abs=1e-4)  # the first step after the resume
    steps = [p["step"] for p in curve(resumed) if p["kind"] == "eval" and p["group"] == "base"]
    assert steps == [0, 10, 20, 24]


def test_config_errors_come_one_line_each_all_at_once(capsys, tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("model:\n  nmae: x\neval:\n  suites: [mbpp+, humaneval-pp]\ntrainer:\n  lr: fast\n")
    window = "eval.select.livecodebench.start_date=2024-08-01"  # a suite eval.suites does not evaluate
    code = main(["train", "--trainer", "ntp", "--config", str(config), "eval.n=many", "data.source=web", window])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2 and "Traceback" not in err
    assert all(line.startswith("ra3bench: error: ") for line in lines)
    for needle in (
        "model.nmae",
        "did you mean 'name'",
        "trainer.lr",
        "eval.n:",
        "humaneval-pp",
        "data.source",
        "eval.select",
    ):
        assert sum(needle in line for line in lines) == 1, (needle, lines)
    code = main(["train", "--trainer", "nttp", "--config", str(config)])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and any("unknown trainer 'nttp'" in line and "did you mean 'ntp'" in line for line in lines)
    assert any("model.nmae" in line for line in lines)  # the rest is still checked


def test_a_plugin_from_outside_registers_and_trains_through_the_cli(private_cache, tmp_path):
    """plugins/example (the README's example) installed with pip, plus a broken plugin beside it."""
    source = tmp_path / "example"
    shutil.copytree(REPO / "plugins" / "example", source, ignore=shutil.ignore_patterns("*.egg-info", "build"))
    broken = tmp_path / "broken"
    (broken / "ra3bench_broken").mkdir(parents=True)
    (broken / "ra3bench_broken" / "__init__.py").write_text("raise ImportError('needs a GPU library')\n")
    (broken / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=68"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "ra3bench-broken"\nversion = "0.1"\n'
        '[project.entry-points."ra3bench.trainers"]\nbroken = "ra3bench_broken:Trainer"\n'
        '[tool.setuptools]\npackages = ["ra3bench_broken"]\n'
    )
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index"]
    subprocess.run([*pip, str(source), str(broken)], check=True, capture_output=True)
    try:
        env = {**os.environ}
        listed = subprocess.run(
            [sys.executable, "-m", "ra3bench", "plugins"], capture_output=True, text=True, env=env, check=True
        )
        rows = {line.split("|")[2].strip(): line for line in listed.stdout.splitlines() if line.count("|") > 3}
        assert "ra3bench-example" in rows["last-layers"] and "ok" in rows["last-layers"]
        assert "BROKEN" in rows["broken"] and "needs a GPU library" in rows["broken"]
        assert "ok" in rows["ntp"]  # the broken one took nothing down
        out = tmp_path / "run"
        quick = [o for o in QUICK if not o.startswith("trainer.")] + ["trainer.steps=4", "eval.every=2"]
        done = subprocess.run(
            [sys.executable, "-m", "ra3bench", "train", "--trainer", "last-layers", *quick, f"run.out={out}"],
            capture_output=True,
            text=True,
            env=env,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert sorted(losses(out)) == [1, 2, 3, 4]
        assert sorted({p["step"] for p in curve(out) if p["kind"] == "eval"}) == [0, 2, 4]
    finally:
        subprocess.run(
            [sys.executable, "-m", "pip", "uninstall", "-y", "-q", "ra3bench-example", "ra3bench-broken"],
            capture_output=True,
        )


@pytest.mark.parametrize("path", sorted((REPO / "examples" / "train").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_loads(path):
    from ra3bench.training.runner import load_train_config

    trainer = path.stem.split("_")[0]
    _, config = load_train_config(trainer, path, [])
    assert config.eval.suites and config.trainer.steps > 0


def test_lora_trains_only_the_adapters_and_resumes(private_cache, tmp_path):
    quick = [o for o in QUICK if not o.startswith(("trainer.steps", "eval.every"))]
    overrides = [*quick, "trainer.steps=4", "eval.every=0", "model.lora.r=4", "run.save_every=2"]
    overrides.append(f"run.out={tmp_path / 'lora'}")
    run_dir = train("ntp", None, overrides)
    checkpoint = run_dir / "checkpoints" / "step-000004"
    assert (checkpoint / "adapter_model.safetensors").exists()
    assert not list(checkpoint.glob("model*.safetensors"))  # the base weights are not copied
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["model"]["lora"]["r"] == 4
    before = losses(run_dir)
    (run_dir / "checkpoints" / "LATEST").write_text("step-000002\n")  # as if killed after step 2
    resumed = losses(train("ntp", None, overrides, resume=True))
    assert sorted(resumed) == [1, 2, 3, 4]
    assert resumed[4] == pytest.approx(before[4], abs=1e-4)


def test_each_runs_one_training_per_value_and_draws_them_together(private_cache, tmp_path, capsys):
    """A two-arm learning-rate sweep: both configs checked first, both runs complete, one PNG;
    --resume keeps finished arms; a bad value in any arm stops the sweep before anything trains."""
    quick = [o for o in QUICK if not o.startswith(("trainer.steps", "eval.every"))]
    args = ["train", "--trainer", "ntp", *quick, "trainer.steps=3", "eval.every=0", f"run.out={tmp_path / 'sweep'}"]
    bad = main([*args, "--each", "trainer.lr=slow:1e-4,fast:quick"])
    err = capsys.readouterr().err
    assert bad == 2 and "[fast] trainer.lr" in err and "Traceback" not in err
    assert not (tmp_path / "sweep").exists()

    assert main([*args, "--each", "trainer.lr=slow:1e-4,fast:3e-3"]) == 0
    for label, lr in (("slow", 1e-4), ("fast", 3e-3)):
        run = tmp_path / "sweep" / label
        assert sorted(losses(run)) == [1, 2, 3]
        assert json.loads((run / "manifest.json").read_text())["config"]["trainer"]["lr"] == lr
        assert [p["step"] for p in curve(run) if p["kind"] == "eval" and p["group"] == "base"] == [0, 3]
    assert (tmp_path / "sweep" / "curves.png").read_bytes().startswith(b"\x89PNG")
    capsys.readouterr()
    assert main([*args, "--each", "trainer.lr=slow:1e-4,fast:3e-3", "--resume"]) == 0
    assert capsys.readouterr().out.count("finished, kept") == 2


def test_start_from_reuses_a_matching_step_0_and_refuses_a_different_measurement(private_cache, tmp_path, capsys):
    """RLVR from an init that another run already measured: step 0 is that measurement, checked
    to be the same one (data, problems, n, sampling), traced to its folder, not measured again."""
    quick = [o for o in QUICK if not o.startswith(("trainer.steps", "eval.every"))]
    common = [*quick, "trainer.steps=2", "eval.every=0"]
    first = train("ntp", None, [*common, f"run.out={tmp_path / 'first'}"])
    measured = first / "evals" / "step-000000"
    second = train("ntp", None, [*common, f"run.out={tmp_path / 'second'}", f"eval.start_from={measured}"])
    zero = [p for p in curve(second) if p["kind"] == "eval" and p["step"] == 0]
    assert {p["group"]: p["pass_at_k"] for p in zero} == {
        p["group"]: p["pass_at_k"] for p in curve(first) if p["kind"] == "eval" and p["step"] == 0
    }
    assert all((second / p["run_dir"]).resolve() == (measured / "mbppplus").resolve() for p in zero)
    assert not (second / "evals" / "step-000000").exists()  # nothing generated for step 0
    assert (second / "evals" / "step-000002" / "mbppplus" / "summary.json").exists()
    record = json.loads((second / "manifest.json").read_text())["evaluation"]["start_from"]["mbpp+"]
    assert record["model"] == "ntp@step0" and record["run_dir"] == str(measured / "mbppplus")

    args = ["train", "--trainer", "ntp", *common, f"run.out={tmp_path / 'third'}"]
    assert main([*args, f"eval.start_from={measured}", "eval.max_new_tokens=9", "eval.temperature=0.5"]) == 2
    err = capsys.readouterr().err
    assert "max_new_tokens is 8, this run's is 9" in err and "temperature is 0.8, this run's is 0.5" in err
    assert "Traceback" not in err and not (tmp_path / "third" / "curve.jsonl").exists()
    assert main([*args, f"eval.start_from={tmp_path / 'nowhere'}", "--check"]) == 2
    assert "eval.start_from: no folder" in capsys.readouterr().err
    # it must have measured the weights this run starts from: step 2 of a run is not the base model
    assert main([*args, f"eval.start_from={first / 'evals' / 'step-000002'}", "--check"]) == 2
    assert "measured first at step 2, not the untrained tiny-random" in capsys.readouterr().err
    # from a checkpoint (rlvr's trainer.init): the evaluation of that checkpoint, not another one
    evals = [o for o in quick if o.startswith("eval.")]
    init = f"trainer.init={first}/checkpoints/step-000002"
    rlvr = ["train", "--trainer", "rlvr", "model.name=tiny-random", *evals, init]
    assert main([*rlvr, f"eval.start_from={measured}", "--check"]) == 2
    assert "but this run starts from trainer.init" in capsys.readouterr().err
    assert main([*rlvr, f"eval.start_from={first}/evals/step-000002", "--check"]) == 0
    capsys.readouterr()
    assert main([*args, f"eval.start_from={measured}", "eval.max_new_tokens=9", "--check"]) == 2
    assert "max_new_tokens is 8, this run's is 9" in capsys.readouterr().err
    # a sweep checks every arm's start point before its first arm trains
    sweep = ["train", "--trainer", "ntp", *common, f"run.out={tmp_path / 'sweep'}"]
    each = ["--each", f"eval.start_from=a:{measured},b:{measured}", "--each", "eval.max_new_tokens=a:8,b:9"]
    assert main([*sweep, *each]) == 2
    err = capsys.readouterr().err
    assert "[b] eval.start_from" in err and "[a]" not in err and not (tmp_path / "sweep").exists()


def test_an_evaluation_resumed_after_its_samples_were_written_generates_nothing_again(private_cache, tmp_path):
    """A run killed between suites (or mid-suite) keeps the samples it wrote: the model is asked
    only for the missing ones, and the stored programs are the ones judged."""
    from ra3bench.tiny import tiny_model
    from ra3bench.training.base import EvalConfig
    from ra3bench.training.evaluation import EvalSchedule

    model, tokenizer = tiny_model()
    config = EvalConfig(limit=2, n=1, max_new_tokens=8, sandbox="local", workers=2)
    schedule = EvalSchedule(config, total_steps=1, training_ids=set())
    try:
        first = schedule.run(model, tokenizer, tmp_path / "step-0", "tiny@step0")
        samples = (tmp_path / "step-0" / "mbppplus" / "samples.jsonl").read_text()

        def no_generation(*args, **kwargs):
            raise AssertionError("the resumed evaluation generated again")

        model.generate = no_generation
        again = schedule.run(model, tokenizer, tmp_path / "step-0", "tiny@step0")
    finally:
        schedule.close()
    assert again[0].pass_at_k == first[0].pass_at_k
    assert (tmp_path / "step-0" / "mbppplus" / "samples.jsonl").read_text() == samples
