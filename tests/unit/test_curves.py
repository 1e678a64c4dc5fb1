import json
import math

import pytest

from ra3bench.training.curves import CURVE, CurveLog, curve_metrics, eval_series, plot_curves, read_curve


def _eval(log: CurveLog, step: int, value: float, *, group: str = "plus", k: int = 1, suite: str = "mbpp+") -> None:
    log.log_eval(
        step,
        tokens_seen=step * 1000,
        wall_time_s=step * 2.0,
        eval_time_s=5.0,
        suite=suite,
        group=group,
        k=k,
        pass_at_k=value,
        ci_low=max(0.0, value - 0.08),
        ci_high=min(1.0, value + 0.08),
        run_dir=f"evals/step-{step:06d}",
        n_problems=50,
        n_samples=200,
    )


def test_round_trip_keeps_complete_lines_and_drops_a_torn_one(tmp_path):
    with CurveLog(tmp_path) as log:
        log.log_train(1, 2048, 1.5, loss=2.5, lr=1e-4, grad_norm=0.9)
        _eval(log, 1, 0.25)
    with (tmp_path / CURVE).open("a") as fh:
        fh.write('{"kind": "train", "step": 2, "lo')  # killed in mid-write
    curve = read_curve(tmp_path)
    assert curve == read_curve(tmp_path / CURVE)
    assert curve[0] == {
        "kind": "train",
        "step": 1,
        "tokens_seen": 2048,
        "wall_time_s": 1.5,
        "loss": 2.5,
        "lr": 1e-4,
        "grad_norm": 0.9,
    }
    assert curve[1]["kind"] == "eval"
    assert {k: curve[1][k] for k in ("suite", "group", "k", "pass_at_k", "n_problems", "n_samples", "run_dir")} == {
        "suite": "mbpp+",
        "group": "plus",
        "k": 1,
        "pass_at_k": 0.25,
        "n_problems": 50,
        "n_samples": 200,
        "run_dir": "evals/step-000001",
    }
    assert len(curve) == 2
    # a new log on the same folder drops the torn tail and appends cleanly
    with CurveLog(tmp_path) as log:
        log.log_train(2, 4096, 3.0, loss=2.0, lr=1e-4)
    lines = (tmp_path / CURVE).read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 1, 2]


def test_metrics_from_numpy_or_torch_scalars_are_plain_json_numbers(tmp_path):
    np = pytest.importorskip("numpy")
    with CurveLog(tmp_path) as log:
        log.log_train(1, 10, 0.1, loss=np.float32(1.5), lr=np.float64(0.001))
    (record,) = read_curve(tmp_path)
    assert record["loss"] == 1.5 and type(record["loss"]) is float
    assert record["lr"] == pytest.approx(0.001)


def test_truncate_after_drops_later_steps_and_logging_continues(tmp_path):
    log = CurveLog(tmp_path)
    for step in range(1, 7):
        log.log_train(step, step * 100, step * 1.0, loss=3.0 - step * 0.1, lr=1e-4)
        if step % 2 == 0:
            _eval(log, step, step / 10)
    log.truncate_after(4)  # resumed from the checkpoint at step 4
    for step in (5, 6):
        log.log_train(step, step * 100, step * 1.0, loss=9.0, lr=1e-4)
    log.close()
    curve = read_curve(tmp_path)
    train_steps = [r["step"] for r in curve if r["kind"] == "train"]
    assert train_steps == [1, 2, 3, 4, 5, 6]
    assert [r["step"] for r in curve if r["kind"] == "eval"] == [2, 4]
    assert [r["loss"] for r in curve if r["kind"] == "train" and r["step"] > 4] == [9.0, 9.0]
    assert not list(tmp_path.glob(".*.tmp"))  # the atomic rewrite left nothing behind


def test_truncate_to_the_lines_a_checkpoint_saw_drops_later_lines_at_the_same_step(tmp_path):
    """RA3 logs an E-step at the step it starts from; a resume from that step's checkpoint drops it."""
    log = CurveLog(tmp_path)
    log.log_train(0, 0, 0.0, estep_step=1, estep_reward=-1.0)
    saved = log.lines()  # the checkpoint at step 0
    log.log_train(0, 0, 1.0, estep_step=2, estep_reward=-0.5)  # logged after it, then killed
    log.truncate_after(0, saved)
    log.close()
    assert [r["estep_step"] for r in read_curve(tmp_path)] == [1]


def test_tensorboard_writes_event_files(tmp_path):
    pytest.importorskip("torch.utils.tensorboard")
    with CurveLog(tmp_path, tensorboard=True) as log:
        log.log_train(1, 100, 0.5, loss=2.0, lr=1e-4)
        _eval(log, 1, 0.3)
    events = list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert events and all(e.stat().st_size > 0 for e in events)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tmp_path / "tensorboard"))
    acc.Reload()
    assert {"train/loss", "train/lr", "eval/mbpp+/plus/pass@1"} <= set(acc.Tags()["scalars"])
    assert [e.value for e in acc.Scalars("train/loss")] == [2.0]


def _points(values: dict[int, float]) -> list[dict]:
    return [
        {"kind": "eval", "step": s, "tokens_seen": s * 1000, "wall_time_s": s * 3.0, "pass_at_k": v}
        for s, v in values.items()
    ]


def test_curve_metrics_on_a_hand_made_series():
    # out of order on purpose: curve_metrics sorts by step
    points = _points({20: 0.2, 0: 0.1, 40: 0.3, 10: 0.4})
    m = curve_metrics(points, threshold=0.35)
    # trapezoids: 10*(0.1+0.4)/2 + 10*(0.4+0.2)/2 + 20*(0.2+0.3)/2 = 2.5 + 3.0 + 5.0 = 10.5, over 40 steps
    assert m["auc"] == pytest.approx(10.5 / 40)
    assert m["first"] == 0.1 and m["final"] == 0.3
    assert m["best"] == 0.4 and m["best_step"] == 10
    assert m["steps_to_threshold"] == 10 and m["tokens_to_threshold"] == 10_000
    assert m["n_points"] == 4
    assert curve_metrics(points, threshold=0.1)["steps_to_threshold"] == 0  # >=: reached at once
    never = curve_metrics(points, threshold=0.41)
    assert never["steps_to_threshold"] is None and never["tokens_to_threshold"] is None
    assert curve_metrics(points)["steps_to_threshold"] is None
    # tokens_seen is proportional to step here, so the normalised area is the same
    assert curve_metrics(points, x="tokens_seen")["auc"] == pytest.approx(10.5 / 40)


def test_curve_metrics_edge_cases():
    assert curve_metrics(_points({5: 0.2}))["auc"] == 0.2
    nan_point = _points({3: math.nan})
    m = curve_metrics(_points({0: 0.0, 10: 1.0}) + nan_point, threshold=0.5)
    assert m["auc"] == pytest.approx(0.5) and m["n_points"] == 2 and m["steps_to_threshold"] == 10
    empty = curve_metrics([])
    assert empty["n_points"] == 0 and empty["final"] is None and empty["auc"] is None
    with pytest.raises(ValueError, match="x must be"):
        curve_metrics(_points({0: 0.1}), x="epoch")


def test_eval_series_groups_by_suite_group_k_and_sorts_by_step(tmp_path):
    with CurveLog(tmp_path) as log:
        for step in (10, 0, 5):
            for group in ("base", "plus"):
                _eval(log, step, step / 20, group=group)
        log.log_train(3, 10, 1.0, loss=1.0, lr=0.1)
        _eval(log, 5, 0.9, group="plus")  # a repeated step: the last line wins
    series = eval_series(read_curve(tmp_path))
    assert list(series) == [("mbpp+", "base", 1), ("mbpp+", "plus", 1)]
    assert [p["step"] for p in series["mbpp+", "plus", 1]] == [0, 5, 10]
    assert series["mbpp+", "plus", 1][1]["pass_at_k"] == 0.9


def _fake_run(folder, slope: float, loss0: float, steps: int = 60) -> list[dict]:
    with CurveLog(folder) as log:
        for step in range(0, steps + 1):
            if step:
                loss = loss0 * math.exp(-step / (25 * slope)) + 0.4 + 0.05 * math.sin(step)
                log.log_train(step, step * 1000, step * 2.0, loss=loss, lr=1e-4)
            if step % 10 == 0:
                for group, shift in (("base", 0.05), ("plus", 0.0)):
                    for k in (1, 5):
                        value = min(0.95, 0.2 + shift + 0.06 * k**0.5 + slope * step / 200)
                        _eval(log, step, value, group=group, k=k)
    return read_curve(folder)


def test_plot_curves_overlays_runs_in_one_png(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    runs = {
        "NTP": _fake_run(tmp_path / "ntp", slope=0.6, loss0=2.0),
        "RA3": _fake_run(tmp_path / "ra3", slope=1.0, loss0=1.8),
    }
    with CurveLog(tmp_path / "base") as log:  # the base model: one evaluation, no training
        for group in ("base", "plus"):
            for k in (1, 5):
                _eval(log, 0, 0.22 + 0.05 * (group == "base") + 0.06 * k**0.5, group=group, k=k)
    runs["base"] = read_curve(tmp_path / "base")

    out = plot_curves(runs, tmp_path / "plots" / "curves.png", title="NTP vs RA3 (tiny)")
    assert out == tmp_path / "plots" / "curves.png"
    data = out.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 30_000

    import matplotlib.figure
    import matplotlib.image

    figure_axes = []
    original = matplotlib.figure.Figure.savefig

    def spy(self, *args, **kwargs):
        figure_axes.append(list(self.axes))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", spy)
    plot_curves(runs, tmp_path / "tokens.png", x="tokens_seen")
    (axes,) = figure_axes
    assert len(axes) == 4 + 1  # (mbpp+, base|plus, k=1|5) panels, then the loss panel
    assert axes[-1].get_title() == "training loss"
    assert len(axes[-1].get_lines()) == 2 * 2  # NTP and RA3: raw + smoothed each; base has no loss
    titles = [ax.get_title() for ax in axes[:-1]]
    assert titles[0].startswith("mbpp+ · base · pass@1")
    assert axes[0].get_xlabel() == "training tokens seen"
    height, width = matplotlib.image.imread(tmp_path / "tokens.png").shape[:2]
    assert width > 1000 and height > 500

    with pytest.raises(ValueError, match="x must be"):
        plot_curves(runs, tmp_path / "x.png", x="epoch")


def test_plot_curves_draws_the_trainers_metric_below(tmp_path, monkeypatch):
    """An RL trainer's curve shows its batch reward, labelled as not a benchmark, not its near-zero loss."""
    pytest.importorskip("matplotlib")
    with CurveLog(tmp_path / "rl") as log:
        for step in range(1, 11):
            log.log_train(step, 100 * step, float(step), loss=0.0, reward_mean=step / 10)
        _eval(log, 0, 0.1)
        _eval(log, 10, 0.2)
    import matplotlib.figure

    drawn = []
    original = matplotlib.figure.Figure.savefig

    def spy(self, *args, **kwargs):
        drawn.append(list(self.axes))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", spy)
    plot_curves({"rlvr": read_curve(tmp_path / "rl")}, tmp_path / "rl.png", train_metric="reward_mean")
    (axes,) = drawn
    assert "reward_mean" in axes[-1].get_title() and "not a benchmark" in axes[-1].get_title()
    (line,) = axes[-1].get_lines()
    assert list(line.get_ydata()) == [step / 10 for step in range(1, 11)]


def test_report_compares_aucs_over_the_steps_every_run_covers(tmp_path):
    """A run that skipped step 0 (eval.at_start off) has an AUC over 24-48 only: the report says
    so and gives each run's AUC over the steps all runs cover."""
    from ra3bench.report.base import Table
    from ra3bench.report.build import training_blocks

    def run(points: dict[int, float]) -> list[dict]:
        return [
            {"kind": "eval", "step": s, "suite": "mbpp+", "group": "base", "k": 1, "pass_at_k": v}
            for s, v in points.items()
        ]

    curves = {"NTP": run({0: 0.03, 24: 0.10, 48: 0.135}), "RA3": run({24: 0.09, 48: 0.13})}
    blocks = training_blocks(curves, [], tmp_path, None)
    table = next(b for b in blocks if isinstance(b, Table))
    shared = {row[1]: row[-1] for row in table.rows}
    assert shared == {"NTP": "11.8 (24–48)", "RA3": "11.0 (24–48)"}
    assert any("not comparable" in getattr(b, "text", "") for b in blocks)
    same = training_blocks({"A": run({0: 0.1, 8: 0.2}), "B": run({0: 0.1, 8: 0.3})}, [], tmp_path, None)
    assert {row[-1] for row in next(b for b in same if isinstance(b, Table)).rows} == {"same"}
