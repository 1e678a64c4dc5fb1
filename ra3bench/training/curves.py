"""A training run's convergence curve: ``curve.jsonl``, its plot and its summary numbers.

``curve.jsonl`` (in the run folder) holds one JSON object a line, in the order they were logged::

    {"kind": "train", "step": 10, "tokens_seen": 20480, "wall_time_s": 31.2, "loss": 1.93, "lr": 2e-05, ...}
    {"kind": "eval", "step": 50, "tokens_seen": 102400, "wall_time_s": 160.4, "eval_time_s": 42.0,
     "suite": "mbpp+", "group": "plus", "k": 1, "pass_at_k": 0.31, "ci_low": 0.24, "ci_high": 0.38,
     "run_dir": "results/train-ntp/eval-000050", "n_problems": 50, "n_samples": 200}

It is written like the other JSONL files of a run folder (:class:`ra3bench.results.JsonlWriter`:
appended, flushed line by line, a torn last line dropped when reopened). ``pass_at_k`` and its
95% interval are fractions (0..1). On ``--resume`` from a checkpoint at step S,
:meth:`CurveLog.truncate_after` drops what was logged after S, so the resumed run does not log
those steps twice. Each line also goes to the run's trackers (TensorBoard, W&B, MLflow:
:mod:`ra3bench.training.tracking`), after it is in the file.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ra3bench.results import JsonlWriter, read_jsonl
from ra3bench.training.tracking import TENSORBOARD, Trackers, run_identity

if TYPE_CHECKING:
    from ra3bench.summary import Summary

CURVE = "curve.jsonl"

X_AXES = {"step": "optimizer step", "tokens_seen": "training tokens seen", "wall_time_s": "wall time (s)"}

SeriesKey = tuple[str, str, int]  # (suite, group, k)


class CurveLog:
    """Appends to ``folder/curve.jsonl``, and passes each line on to the trackers in ``report_to``
    (``tensorboard``: under ``folder/tensorboard``; ``wandb``; ``mlflow``)."""

    def __init__(self, folder: Path, tensorboard: bool = False, report_to: Sequence[str] = ()) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / CURVE
        self._writer: JsonlWriter | None = JsonlWriter(self.path)
        names = [*report_to, *([TENSORBOARD] if tensorboard else [])]
        self.trackers = Trackers.open(list(dict.fromkeys(names)), self.folder)

    def _write(self, record: dict) -> None:
        if self._writer is None:
            raise ValueError(f"{self.path}: the curve log is closed")
        self._writer.write(record)
        self.trackers.log(record)  # after the file has it: a tracker that fails loses nothing

    def log_run(self, config: Mapping[str, Any], manifest: Mapping[str, Any]) -> None:
        """Give the trackers the resolved config and the run's identity from its manifest (once a session)."""
        self.trackers.log_run(config, run_identity(manifest, self.folder))

    def log_train(self, step: int, tokens_seen: int, wall_time_s: float, **metrics: float) -> None:
        """One training point: ``loss``, ``lr`` and whatever else the trainer measures."""
        values = {name: _number(value) for name, value in metrics.items()}
        self._write(
            {"kind": "train", "step": int(step), "tokens_seen": int(tokens_seen), "wall_time_s": float(wall_time_s)}
            | values
        )

    def log_eval(
        self,
        step: int,
        tokens_seen: int,
        wall_time_s: float,
        eval_time_s: float,
        suite: str,
        group: str,
        k: int,
        pass_at_k: float,
        ci_low: float,
        ci_high: float,
        run_dir: str,
        n_problems: int,
        n_samples: int,
    ) -> None:
        """One evaluation point: pass@k of one (suite, group, k) with its 95% interval."""
        self._write(
            {
                "kind": "eval",
                "step": int(step),
                "tokens_seen": int(tokens_seen),
                "wall_time_s": float(wall_time_s),
                "eval_time_s": float(eval_time_s),
                "suite": str(suite),
                "group": str(group),
                "k": int(k),
                "pass_at_k": float(pass_at_k),
                "ci_low": float(ci_low),
                "ci_high": float(ci_high),
                "run_dir": str(run_dir),
                "n_problems": int(n_problems),
                "n_samples": int(n_samples),
            }
        )

    def log_summary(
        self, step: int, tokens_seen: int, wall_time_s: float, summary: Summary, relative_to: Path
    ) -> dict[tuple[str, str], float]:
        """One :meth:`log_eval` line per (group, k) of an evaluation's summary; its ``run_dir`` relative
        to ``relative_to`` (the training run's folder). Returns {(group, k): pass@k}."""
        logged = {}
        for group, values in summary.pass_at_k.items():
            for k, value in values.items():
                low, high = summary.pass_at_k_ci95[group][k]
                self.log_eval(
                    step=step,
                    tokens_seen=tokens_seen,
                    wall_time_s=wall_time_s,
                    eval_time_s=summary.eval_time_s,
                    suite=summary.suite,
                    group=group,
                    k=int(k),
                    pass_at_k=value,
                    ci_low=low,
                    ci_high=high,
                    run_dir=os.path.relpath(summary.run_dir or ".", relative_to),
                    n_problems=summary.n_problems,
                    n_samples=summary.n_samples,
                )
                logged[(group, k)] = value
        return logged

    def lines(self) -> int:
        """Complete lines written so far (a checkpoint records it, so a resume drops what came after)."""
        return sum(1 for _ in read_jsonl(self.path))

    def truncate_after(self, step: int, lines: int | None = None) -> None:
        """Drop every line logged for a step after ``step`` (resuming from a checkpoint there), and
        with ``lines`` every line past the first ``lines``: what was logged after the checkpoint at
        the same step (an E-step logged at the step it starts from) goes too.

        The file is rewritten atomically (a temporary file, then ``os.replace``); the trackers are told
        what was dropped (:meth:`Trackers.rewind`: TensorBoard hides its own events after ``step``,
        W&B and MLflow keep theirs and are not sent those points again).
        """
        if self._writer is not None:
            self._writer.close()
        records = list(read_jsonl(self.path))
        kept = [r for r in records if not (isinstance(r.get("step"), int) and r["step"] > step)]
        if lines is not None:
            kept = kept[:lines]
        kept_ids = {id(r) for r in kept}
        dropped = [r for r in records if id(r) not in kept_ids]
        tmp = self.folder / f".{CURVE}.tmp"
        with tmp.open("w", encoding="utf-8") as fh:
            for record in kept:
                fh.write(_dumps(record) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        self._writer = JsonlWriter(self.path)
        self.trackers.rewind(int(step), [r for r in dropped if isinstance(r.get("step"), int)])

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self.trackers.close()

    def __enter__(self) -> CurveLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _number(value: Any) -> Any:
    """Plain JSON numbers from Python, numpy or torch scalars; anything else as given."""
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


def _dumps(record: dict) -> str:
    return json.dumps(record, ensure_ascii=False)


def read_curve(path_or_folder: str | Path) -> list[dict]:
    """The complete lines of a ``curve.jsonl`` (a run folder or the file itself), in file order."""
    path = Path(path_or_folder)
    if path.is_dir():
        path = path / CURVE
    return list(read_jsonl(path))


def eval_series(curve: Sequence[dict]) -> dict[SeriesKey, list[dict]]:
    """Eval points grouped by (suite, group, k), each sorted by step; keys sorted.

    Should a step appear twice in a series (a resume that was not truncated), its last line wins.
    """
    grouped: dict[SeriesKey, dict[int, dict]] = {}
    for record in curve:
        if record.get("kind") != "eval":
            continue
        key = (str(record["suite"]), str(record["group"]), int(record["k"]))
        grouped.setdefault(key, {})[int(record["step"])] = record
    return {key: [by_step[s] for s in sorted(by_step)] for key, by_step in sorted(grouped.items())}


def train_series(curve: Sequence[dict]) -> list[dict]:
    """Train points sorted by step (the last line wins for a repeated step)."""
    by_step = {int(r["step"]): r for r in curve if r.get("kind") == "train"}
    return [by_step[s] for s in sorted(by_step)]


def curve_metrics(points: Sequence[dict], *, threshold: float | None = None, x: str = "step") -> dict:
    """Summary numbers of one (suite, group, k) series (eval points, any order).

    * ``final``: pass@k at the last step; ``best`` / ``best_step``: the highest, and its first step;
    * ``auc``: area under pass@k vs ``x`` (trapezoid) divided by the x-range, i.e. the mean
      pass@k over training (one point: that value);
    * ``steps_to_threshold`` / ``tokens_to_threshold``: the first step (and its tokens seen)
      where pass@k >= ``threshold``; None if never reached or no threshold was given.

    Points without a finite pass@k (no problem had enough samples) are left out.
    """
    if x not in X_AXES:
        raise ValueError(f"x must be one of {', '.join(X_AXES)}, got {x!r}")
    pts = sorted(
        (p for p in points if _finite(p.get("pass_at_k"))),
        key=lambda p: int(p["step"]),
    )
    result: dict[str, Any] = {
        "n_points": len(pts),
        "first": None,
        "final": None,
        "best": None,
        "best_step": None,
        "auc": None,
        "x": x,
        "threshold": threshold,
        "steps_to_threshold": None,
        "tokens_to_threshold": None,
    }
    if not pts:
        return result
    ys = [float(p["pass_at_k"]) for p in pts]
    xs = [float(p[x]) for p in pts]
    best_i = max(range(len(ys)), key=lambda i: (ys[i], -i))
    result.update(first=ys[0], final=ys[-1], best=ys[best_i], best_step=int(pts[best_i]["step"]))
    span = xs[-1] - xs[0]
    if len(pts) == 1 or span <= 0:
        result["auc"] = sum(ys) / len(ys)
    else:
        area = sum((xs[i + 1] - xs[i]) * (ys[i + 1] + ys[i]) / 2 for i in range(len(pts) - 1))
        result["auc"] = area / span
    if threshold is not None:
        for p, y in zip(pts, ys, strict=True):
            if y >= threshold:
                result["steps_to_threshold"] = int(p["step"])
                result["tokens_to_threshold"] = int(p["tokens_seen"]) if "tokens_seen" in p else None
                break
    return result


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def plot_curves(
    runs: Mapping[str, Sequence[dict]],
    out_png: Path,
    *,
    title: str = "",
    x: str = "step",
    train_metric: str = "loss",
) -> Path:
    """One PNG comparing runs: pass@k per (suite, group, k) on top, a training metric below.

    ``runs`` maps a label (``"NTP"``, ``"RA3"``, ``"base"``) to its curve (:func:`read_curve`).
    Each top panel draws pass@k (%) vs ``x`` for each run, its 95% interval as a shaded band; a
    run with a single eval point (a base model) is drawn as a dashed horizontal reference with
    its band. The bottom panel draws each run's ``train_metric`` (the loss; an RL trainer's batch
    reward, which is kept apart from pass@k) as a smoothed line over the faint raw one when there
    are many points. Drawn with the Agg backend, without pyplot.
    """
    if x not in X_AXES:
        raise ValueError(f"x must be one of {', '.join(X_AXES)}, got {x!r}")
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import EngFormatter

    out_png = Path(out_png)
    series = {label: eval_series(curve) for label, curve in runs.items()}
    trains = {label: train_series(curve) for label, curve in runs.items()}
    keys = sorted({key for per_run in series.values() for key in per_run})
    palette = matplotlib.colormaps["tab10"].colors
    colors = {label: palette[i % len(palette)] for i, label in enumerate(runs)}

    ncols = min(max(len(keys), 1), 4)
    nrows_top = math.ceil(len(keys) / ncols) if keys else 0
    style = {
        "font.size": 11,
        "axes.titlesize": 12,
        "axes.labelsize": 11,
        "legend.fontsize": 10,
        "xtick.labelsize": 9.5,
        "ytick.labelsize": 9.5,
    }
    with matplotlib.rc_context(style):
        fig = Figure(figsize=(max(4.6 * ncols, 7.5), 3.6 * nrows_top + 3.4), layout="constrained")
        FigureCanvasAgg(fig)
        grid = fig.add_gridspec(nrows_top + 1, ncols, height_ratios=[1.0] * nrows_top + [0.9])

        for i, key in enumerate(keys):
            ax = fig.add_subplot(grid[i // ncols, i % ncols])
            _draw_eval_panel(ax, key, series, colors, x)
            _format_x(ax, x, EngFormatter)

        loss_ax = fig.add_subplot(grid[nrows_top, :])
        drew_loss = _draw_train_panel(loss_ax, trains, colors, x, train_metric)
        _format_x(loss_ax, x, EngFormatter)

        handles = []
        for label in runs:  # a run drawn only as a reference level gets a dashed key
            reference = not trains[label] and all(len(pts) <= 1 for pts in series[label].values())
            style_kw = {"ls": "--", "lw": 1.8} if reference else {"lw": 2.2, "marker": "o", "ms": 5}
            handles.append(Line2D([], [], color=colors[label], label=label, **style_kw))
        if handles:
            # as many columns as fit the figure's width (a seed mean's label is long)
            per_column = 0.75 + 0.085 * max(len(h.get_label()) for h in handles)
            ncols = max(1, min(len(handles), 6, int(fig.get_figwidth() / per_column)))
            fig.legend(handles=handles, loc="outside lower center", ncols=ncols, frameon=False)
        if title:
            fig.suptitle(title, fontsize=14, fontweight="bold")
        if not drew_loss:
            loss_ax.text(0.5, 0.5, f"no {train_metric} logged", ha="center", va="center", transform=loss_ax.transAxes)
        out_png.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out_png, dpi=120)
    return out_png


def _draw_eval_panel(ax: Any, key: SeriesKey, series: Mapping[str, Mapping], colors: Mapping, x: str) -> None:
    suite, group, k = key
    n_problems = set()
    single: list[tuple[str, dict]] = []
    for label, per_run in series.items():
        pts = [p for p in per_run.get(key, []) if _finite(p.get("pass_at_k"))]
        if not pts:
            continue
        n_problems.add(pts[-1].get("n_problems"))
        if len(pts) == 1:
            single.append((label, pts[0]))
            continue
        xs = [p[x] for p in pts]
        ys = [100 * p["pass_at_k"] for p in pts]
        lo = [100 * p.get("ci_low", p["pass_at_k"]) for p in pts]
        hi = [100 * p.get("ci_high", p["pass_at_k"]) for p in pts]
        ax.fill_between(xs, lo, hi, color=colors[label], alpha=0.18, lw=0)
        ax.plot(xs, ys, color=colors[label], lw=2.2, marker="o", ms=4.5, label=label)
    for label, p in single:  # a base model: a reference level across the panel
        y = 100 * p["pass_at_k"]
        low, high = 100 * p.get("ci_low", p["pass_at_k"]), 100 * p.get("ci_high", p["pass_at_k"])
        ax.axhspan(low, high, color=colors[label], alpha=0.10, lw=0)
        ax.axhline(y, color=colors[label], lw=1.8, ls="--", label=label)
        ax.plot([p[x]], [y], color=colors[label], marker="o", ms=5)
    problems = next(iter(n_problems)) if len(n_problems) == 1 else None
    ax.set_title(f"{suite} · {group} · pass@{k}" + (f"  ({problems} problems)" if problems else ""))
    ax.set_ylabel(f"pass@{k} (%)")
    ax.set_xlabel(X_AXES[x])
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.35)


def _draw_train_panel(ax: Any, trains: Mapping[str, list[dict]], colors: Mapping, x: str, metric: str) -> bool:
    drew = False
    for label, pts in trains.items():
        pts = [p for p in pts if _finite(p.get(metric))]
        if not pts:
            continue
        xs = [p[x] for p in pts]
        ys = [float(p[metric]) for p in pts]
        if len(ys) > 40:
            ax.plot(xs, ys, color=colors[label], lw=0.8, alpha=0.3)
            ax.plot(xs, _ema(ys, alpha=min(0.3, 20 / len(ys))), color=colors[label], lw=2.0, label=label)
        else:
            ax.plot(xs, ys, color=colors[label], lw=2.0, marker="." if len(ys) < 20 else None, label=label)
        drew = True
    what = "training loss" if metric == "loss" else f"training {metric} (of the training batches, not a benchmark)"
    ax.set_title(what)
    ax.set_ylabel(metric)
    ax.set_xlabel(X_AXES[x])
    ax.grid(True, alpha=0.35)
    return drew


def _ema(values: Sequence[float], alpha: float) -> list[float]:
    out: list[float] = []
    for v in values:
        out.append(v if not out else alpha * v + (1 - alpha) * out[-1])
    return out


def _format_x(ax: Any, x: str, eng_formatter: Any) -> None:
    if x == "tokens_seen":
        ax.xaxis.set_major_formatter(eng_formatter(sep=""))
