"""run.report_to: a tiny NTP run's curve also goes to W&B (offline) and MLflow (a file store), read back
with the real packages and compared with curve.jsonl; --resume continues the same tracked runs without
sending a step twice; a tracker that breaks leaves training and curve.jsonl whole; config errors."""

from __future__ import annotations

import json
import shutil
import struct
import sys
from collections import Counter
from pathlib import Path

import pytest

pytest.importorskip("transformers")
pytest.importorskip("wandb")
pytest.importorskip("mlflow")

from mlflow.tracking import MlflowClient
from ra3bench_ntp import NTPTrainer
from wandb.proto import wandb_internal_pb2

from ra3bench.cli.main import main
from ra3bench.training.base import RunConfig
from ra3bench.training.curves import CurveLog, read_curve
from ra3bench.training.runner import train
from ra3bench.training.tracking import mlflow_key, read_state

STEPS = 4
QUICK = [
    "model.name=tiny-random",
    "data.max_examples=8",
    "data.max_length=64",
    f"trainer.steps={STEPS}",
    "trainer.batch_size=2",
    "trainer.lr=3e-3",
    "eval.every=2",
    "eval.limit=1",
    "eval.n=1",
    "eval.max_new_tokens=4",
    "eval.sandbox=local",
    "eval.workers=1",
]
BOTH = "run.report_to=[wandb,mlflow]"


@pytest.fixture
def offline(tmp_path_factory, monkeypatch):
    """No network and a private cache; W&B offline; every tracker setting at its default."""
    monkeypatch.setenv("RA3BENCH_OFFLINE", "1")
    monkeypatch.setenv("RA3BENCH_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "tracking-cache"))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    for name in ("WANDB_DIR", "WANDB_PROJECT", "WANDB_RUN_ID", "WANDB_NAME", "MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "tiny-ntp")


# -- reading back what the trackers stored ----------------------------------------------------------


def wandb_records(run_dir: Path) -> list:
    """Every record of the run's offline ``.wandb`` files (one per session, in order): W&B's
    LevelDB-style log (32 KiB blocks of crc32/length/type-framed chunks after a 7-byte header),
    each record a ``wandb_internal.Record`` protobuf."""
    run_id = read_state(run_dir)["wandb"]["id"]
    files = sorted((run_dir / "wandb").glob(f"offline-run-*-{run_id}/run-{run_id}.wandb"))
    assert files, f"no offline W&B run {run_id} under {run_dir}"
    records = []
    for file in files:
        data = file.read_bytes()
        assert data[:4] == b":W&B"
        pos, block, chunks = 7, 32768, b""
        while pos + 7 <= len(data):
            if block - pos % block < 7:  # a block's tail too short for a header is padding
                pos += block - pos % block
                continue
            _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
            if kind == 0:
                pos += block - pos % block
                continue
            chunks += data[pos + 7 : pos + 7 + length]
            pos += 7 + length
            if kind in (1, 4):  # a full record, or the last chunk of one
                record = wandb_internal_pb2.Record()
                record.ParseFromString(chunks)
                records.append(record)
                chunks = b""
    return records


def wandb_history(run_dir: Path) -> list[dict]:
    rows = []
    for record in wandb_records(run_dir):
        if record.WhichOneof("record_type") == "history":
            rows.append(
                {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item}
            )
    return rows


def wandb_config(run_dir: Path) -> dict:
    config: dict = {}
    for record in wandb_records(run_dir):
        kind = record.WhichOneof("record_type")
        updates = record.run.config.update if kind == "run" else record.config.update if kind == "config" else []
        for item in updates:
            config[item.key] = json.loads(item.value_json)
    return config


def mlflow_run(run_dir: Path):
    state = read_state(run_dir)["mlflow"]
    client = MlflowClient(state["tracking_uri"])
    return client, client.get_run(state["run_id"])


def points(run_dir: Path) -> tuple[dict[int, dict], dict[tuple[int, str], dict]]:
    curve = read_curve(run_dir)
    train_points = {r["step"]: r for r in curve if r["kind"] == "train"}
    eval_points = {(r["step"], r["group"]): r for r in curve if r["kind"] == "eval"}
    assert len(train_points) == sum(r["kind"] == "train" for r in curve)
    return train_points, eval_points


def assert_wandb_holds_the_curve(run_dir: Path, tolerance: float = 0.0) -> None:
    rows = wandb_history(run_dir)
    train_points, eval_points = points(run_dir)
    logged = [(row["train/global_step"], row["train/loss"]) for row in rows if "train/loss" in row]
    assert Counter(step for step, _ in logged) == Counter(list(train_points))  # every step, each once
    for step, loss in logged:
        assert loss == pytest.approx(train_points[step]["loss"], abs=tolerance)
    for row in rows:
        if "train/loss" in row:
            assert row["train/tokens_seen"] == train_points[row["train/global_step"]]["tokens_seen"]
    tags = {(row["train/global_step"], tag.split("/")[2]): row for row in rows for tag in row if tag.endswith("pass@1")}
    assert set(tags) == set(eval_points)
    assert len([row for row in rows if any(t.endswith("pass@1") for t in row)]) == len(eval_points)
    for (step, group), row in tags.items():
        tag = f"eval/mbpp+/{group}/pass@1"
        point = eval_points[(step, group)]
        assert (row[tag], row[f"{tag}/ci_low"], row[f"{tag}/ci_high"]) == (
            point["pass_at_k"],
            point["ci_low"],
            point["ci_high"],
        )


def assert_mlflow_holds_the_curve(run_dir: Path, tolerance: float = 0.0) -> None:
    client, run = mlflow_run(run_dir)
    train_points, eval_points = points(run_dir)
    history = client.get_metric_history(run.info.run_id, "train/loss")
    assert sorted(m.step for m in history) == sorted(train_points)
    for metric in history:
        assert metric.value == pytest.approx(train_points[metric.step]["loss"], abs=tolerance)
    for group in ("base", "plus"):
        tag = mlflow_key(f"eval/mbpp+/{group}/pass@1")
        assert tag == f"eval/mbpp_/{group}/pass_1"
        for suffix, field in (("", "pass_at_k"), ("_ci_low", "ci_low"), ("_ci_high", "ci_high")):
            got = {m.step: m.value for m in client.get_metric_history(run.info.run_id, tag + suffix)}
            assert len(client.get_metric_history(run.info.run_id, tag + suffix)) == len(got)
            assert got == {step: p[field] for (step, g), p in eval_points.items() if g == group}


# -- the tests ------------------------------------------------------------------------------------


def test_a_run_reports_its_curve_to_wandb_offline_and_mlflow(offline, tmp_path):
    run_dir = train("ntp", None, [*QUICK, f"run.out={tmp_path / 'run'}", BOTH])
    manifest = json.loads((run_dir / "manifest.json").read_text())
    train_points, eval_points = points(run_dir)
    assert sorted(train_points) == [1, 2, 3, 4] and {s for s, _ in eval_points} == {0, 2, 4}

    # W&B: offline files in the run folder (WANDB_DIR's default), every point at its step, the config
    # as the run's config, the run's identity under ra3bench.*
    assert_wandb_holds_the_curve(run_dir)
    config = wandb_config(run_dir)
    assert config["trainer"]["steps"] == STEPS and config["model"]["name"] == "tiny-random"
    identity = config["ra3bench"]
    assert identity["run_dir"] == str(run_dir.resolve())
    assert identity["git_sha"] == str(manifest["code"]["git_sha"])
    assert identity["data.examples_sha256"] == manifest["data"]["examples_sha256"]
    sha = manifest["evaluation"]["suites"]["mbpp+"]["tasks_sha256"]
    assert identity["eval.mbpp+.tasks_sha256"] == sha
    assert identity["model"] == "tiny-random"

    # MLflow: a file store under the run folder (MLFLOW_TRACKING_URI's default), in MLFLOW_EXPERIMENT_NAME
    client, run = mlflow_run(run_dir)
    assert read_state(run_dir)["mlflow"]["tracking_uri"] == (run_dir / "mlruns").resolve().as_uri()
    assert client.get_experiment(run.info.experiment_id).name == "tiny-ntp"
    assert run.info.status == "FINISHED" and run.info.run_name == run_dir.name
    assert_mlflow_holds_the_curve(run_dir)
    assert run.data.params["trainer.steps"] == str(STEPS) and run.data.params["eval.k"] == "[1]"
    assert run.data.tags["ra3bench.run_dir"] == str(run_dir.resolve())
    assert run.data.tags["ra3bench.data.source_sha256"] == manifest["data"]["source_sha256"]
    assert run.data.tags["ra3bench.eval.mbpp_.tasks_sha256"] == sha


class DiesAtStep4(NTPTrainer):
    """NTP killed after logging step 3, one step past its step-2 checkpoint (and step 2's evaluation),
    while ``armed`` (the resumed run is the same trainer, so that its evaluations resume too)."""

    armed = True

    def train(self, ctx):
        log = ctx.log

        def dying_log(step, tokens_seen, **metrics):
            if step == 4 and self.armed:
                raise KeyboardInterrupt
            log(step, tokens_seen, **metrics)

        ctx.log = dying_log
        super().train(ctx)


def test_resume_continues_the_same_tracked_runs_without_sending_a_step_twice(offline, tmp_path, capsys, monkeypatch):
    overrides = [*QUICK, f"run.out={tmp_path / 'run'}", "run.save_every=2", BOTH]
    with pytest.raises(KeyboardInterrupt):
        train(f"{__name__}:DiesAtStep4", None, overrides)
    first = read_state(tmp_path / "run")
    assert [r["step"] for r in read_curve(tmp_path / "run") if r["kind"] == "train"] == [1, 2, 3]
    capsys.readouterr()

    monkeypatch.setattr(DiesAtStep4, "armed", False)
    run_dir = train(f"{__name__}:DiesAtStep4", None, overrides, resume=True)
    assert read_state(run_dir) == first  # the same W&B run id and MLflow run
    err = capsys.readouterr().err
    # the cut points (step 2's evaluation logged after the checkpoint, step 3) stay as first sent
    assert "wandb keeps the 3 points logged at steps 2-3 before the interruption" in err
    assert "mlflow keeps the 3 points logged at steps 2-3" in err
    # each step once in both trackers; the values are the resumed run's to within a deterministic replay
    assert_wandb_holds_the_curve(run_dir, tolerance=1e-4)
    assert_mlflow_holds_the_curve(run_dir, tolerance=1e-4)
    run_id = first["wandb"]["id"]
    assert len(list((run_dir / "wandb").glob(f"offline-run-*-{run_id}"))) == 2  # one folder per session
    _, run = mlflow_run(run_dir)
    assert run.info.status == "FINISHED"


class BreaksMlflowAtStep2(NTPTrainer):
    """NTP whose MLflow store disappears under it after step 1, as a full or unmounted disk would."""

    def train(self, ctx):
        log = ctx.log

        def log_then_break(step, tokens_seen, **metrics):
            if step == 2:
                shutil.rmtree(ctx.run_dir / "mlruns")
                (ctx.run_dir / "mlruns").write_text("not a folder any more\n")
            log(step, tokens_seen, **metrics)

        ctx.log = log_then_break
        super().train(ctx)


def test_a_tracker_that_breaks_mid_run_leaves_training_and_curve_jsonl_whole(offline, tmp_path, capsys):
    run_dir = train(f"{__name__}:BreaksMlflowAtStep2", None, [*QUICK, f"run.out={tmp_path / 'run'}", BOTH])
    err = capsys.readouterr().err
    assert err.count("mlflow tracking stopped") == 1, err  # warned once, then left alone
    assert "curve.jsonl keeps every point" in err
    train_points, eval_points = points(run_dir)
    assert sorted(train_points) == [1, 2, 3, 4] and {s for s, _ in eval_points} == {0, 2, 4}
    assert (run_dir / "checkpoints/LATEST").read_text().strip() == "step-000004"
    assert_wandb_holds_the_curve(run_dir)  # the other tracker carried on


def test_a_tracker_that_cannot_start_is_skipped_with_one_line(offline, tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (blocker / "mlruns").as_uri())
    with CurveLog(tmp_path / "run", report_to=["mlflow"]) as log:
        log.log_train(1, 10, 0.1, loss=2.0)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ra3bench: warning: mlflow tracking could not start"), err
    assert read_curve(tmp_path / "run")[0]["loss"] == 2.0


def test_tensorboard_rewinds_on_resume_and_the_flag_is_report_to(tmp_path):
    pytest.importorskip("torch.utils.tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    assert RunConfig(tensorboard=True).trackers() == ["tensorboard"]
    assert RunConfig(tensorboard=True, report_to=["mlflow", "tensorboard"]).trackers() == ["mlflow", "tensorboard"]
    log = CurveLog(tmp_path, tensorboard=True)
    for step in range(1, 5):
        log.log_train(step, step * 10, float(step), loss=10.0 - step)
    saved = log.lines()  # the checkpoint at step 4
    log.log_train(4, 40, 4.5, reward=0.5)  # logged at step 4 after its checkpoint (an E-step), then 5, 6
    for step in (5, 6):
        log.log_train(step, step * 10, float(step), loss=10.0 - step)
    log.truncate_after(4, saved)  # resumed from step 4: all three are logged again
    log.log_train(4, 40, 4.5, reward=0.75)
    for step in (5, 6):
        log.log_train(step, step * 10, float(step), loss=100.0 + step)
    log.close()
    events = [e for f in sorted((tmp_path / "tensorboard").iterdir()) for e in EventFileLoader(str(f)).Load()]
    # TensorBoard was told to drop its events after step 4 (a purge at 5), and was not sent step 4's
    # line again: it holds it already
    assert [e.step for e in events if e.HasField("session_log") and e.session_log.status == 1] == [5]
    assert [(e.step, v.tag) for e in events for v in e.summary.value if v.tag == "train/reward"] == [
        (4, "train/reward")
    ]
    acc = EventAccumulator(str(tmp_path / "tensorboard"))
    acc.Reload()
    assert [(e.step, e.value) for e in acc.Scalars("train/loss")] == [
        (1, 9),
        (2, 8),
        (3, 7),
        (4, 6),
        (5, 105),
        (6, 106),
    ]


def test_unknown_tracker_and_missing_package_are_one_line_config_errors(tmp_path, monkeypatch, capsys):
    out = tmp_path / "never"
    assert main(["train", "--trainer", "ntp", "run.report_to=[wandb,mlfow]", f"run.out={out}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "ra3bench: error: run.report_to[1]: expected one of 'wandb', 'mlflow', 'tensorboard', got 'mlfow' (str); "
        "did you mean 'mlflow'? (override 'run.report_to=[wandb,mlfow]')"
    ]
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if mlflow were not installed
    assert main(["train", "--trainer", "ntp", "run.report_to=wandb,mlflow", f"run.out={out}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        'ra3bench: error: run: report_to: mlflow is not installed; pip install mlflow-skinny (or "ra3bench[tracking]")'
    ]
    assert not out.exists()  # found before anything was loaded or written
