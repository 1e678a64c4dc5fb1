"""The report's figures, drawn with matplotlib's Agg backend (no display, no pyplot state).

Training curves are drawn by :func:`ra3bench.training.curves.plot_curves`, the same figure a
training run redraws after each evaluation, so a report and a run folder show the same picture.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ra3bench.errors import UsageError
from ra3bench.report.base import STATUSES, EvalRun

STATUS_COLORS = {
    "pass": "#2ca02c",
    "fail": "#d62728",
    "error": "#ff7f0e",
    "timeout": "#9467bd",
    "memory": "#8c564b",
    "syntax": "#e377c2",
    "sandbox_error": "#7f7f7f",
}


def _figure(width: float, height: float) -> Any:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError("`ra3bench report` draws with matplotlib: pip install matplotlib") from None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def plot_status(runs: Sequence[EvalRun], out_png: Path) -> Path:
    """One stacked horizontal bar per run: the share of samples in each status."""
    fig = _figure(9.5, 1.2 + 0.55 * len(runs))
    ax = fig.add_subplot()
    labels = [f"{run.label} ({run.suite})" for run in runs]
    left = [0.0] * len(runs)
    for status in STATUSES:
        shares = []
        for run in runs:
            counts = run.status_counts()
            total = sum(counts.values()) or 1
            shares.append(100 * counts.get(status, 0) / total)
        if not any(shares):
            continue
        bars = ax.barh(labels, shares, left=left, color=STATUS_COLORS[status], label=status, height=0.6)
        for bar, share in zip(bars, shares, strict=True):
            if share >= 6:
                x = bar.get_x() + bar.get_width() / 2
                ax.text(x, bar.get_y() + bar.get_height() / 2, f"{share:.0f}%", ha="center", va="center", fontsize=8)
        left = [a + b for a, b in zip(left, shares, strict=True)]
    ax.set_xlim(0, 100)
    ax.set_xlabel("share of samples (%)")
    ax.invert_yaxis()
    ax.set_title("status of every sample")
    fig.legend(loc="outside right upper", frameon=False)
    ax.grid(True, axis="x", alpha=0.3)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=110)
    return out_png


def plot_breakdown(
    title: str,
    buckets: Sequence[str],
    series: Mapping[str, Sequence[tuple[float, float, float, int] | None]],
    out_png: Path,
    ylabel: str,
) -> Path:
    """Grouped bars: a value per bucket (difficulty, month) per run, with its 95% interval as an error bar.

    ``series`` maps a run label to one (value, low, high, problems) per bucket (None: no problem there).
    """
    import numpy as np

    fig = _figure(max(6.5, 1.1 * len(buckets) * max(1, len(series)) ** 0.5 + 2.5), 3.8)
    ax = fig.add_subplot()
    width = 0.8 / max(1, len(series))
    positions = np.arange(len(buckets))
    for i, (label, points) in enumerate(series.items()):
        xs = positions - 0.4 + width * (i + 0.5)
        values = [100 * p[0] if p else 0.0 for p in points]
        err = [
            [100 * (p[0] - p[1]) if p else 0.0 for p in points],
            [100 * (p[2] - p[0]) if p else 0.0 for p in points],
        ]
        ax.bar(xs, values, width=width * 0.92, label=label, yerr=err, capsize=3, error_kw={"lw": 1})
    counts = [next((p[3] for p in points if p), 0) for points in zip(*series.values(), strict=True)]
    ax.set_xticks(positions, [f"{b}\n({n})" for b, n in zip(buckets, counts, strict=True)])
    ax.set_ylim(0, 105)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, axis="y", alpha=0.3)
    fig.legend(loc="outside right upper", frameon=False)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=110)
    return out_png


def plot_training(curves: Mapping[str, list[dict]], out_png: Path, title: str = "") -> Path:
    """Several runs' curves overlaid (pass@k per suite/group/k with intervals, loss below)."""
    try:
        from ra3bench.training.curves import plot_curves

        return plot_curves(curves, out_png, title=title)
    except ImportError:
        raise UsageError("`ra3bench report` draws with matplotlib: pip install matplotlib") from None
