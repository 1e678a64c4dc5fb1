"""The content of `ra3bench report`: tables and figures as blocks, rendered to Markdown and HTML alike.

Evaluation runs give pass@k with intervals (from their summaries), the status of every sample,
and pass@k by difficulty and by contest date where the suite's problems carry them. Training runs
(``curve.jsonl``) give their curves overlaid, with curve metrics; an evaluation run of the same
suite (the base model) is drawn among them as a reference level. Several seeds of a method are drawn
as their mean with the min-max band, and every method is compared with the first
(:mod:`ra3bench.report.methods`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ra3bench.errors import Ra3benchError
from ra3bench.metrics import pass_at_k_with_ci
from ra3bench.report import plots
from ra3bench.report.base import STATUSES, Block, EvalRun, Heading, Image, Para, Table
from ra3bench.training.curves import curve_metrics, eval_series

DIFFICULTY_ORDER = ("easy", "medium", "hard")


def _pct(value: Any) -> str:
    return f"{100 * value:.1f}" if isinstance(value, (int, float)) and math.isfinite(value) else "n/a"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()


def run_blocks(runs: Sequence[EvalRun]) -> list[Block]:
    rows = []
    for run in runs:
        m = run.manifest
        code = m.get("code", {})
        rows.append(
            [
                run.label,
                str(run.root),
                f"{run.suite} {run.suite_version}",
                str(m.get("model", {}).get("model", "?")),
                str(run.summary.get("n_samples", len(run.verdicts))),
                f"{run.summary.get('n_problems', '?')}/{run.summary.get('n_suite_problems', '?')}",
                str(m.get("sandbox", {}).get("kind", "?")),
                f"{code.get('ra3bench', '?')} {str(code.get('git_sha', ''))[:10]}".strip(),
                str(m.get("created", "")),
            ]
        )
    headers = ["run", "folder", "suite", "model", "samples", "problems", "sandbox", "ra3bench", "created"]
    return [Heading("Runs"), Table(headers, rows)]


def pass_blocks(runs: Sequence[EvalRun]) -> list[Block]:
    rows = []
    for run in runs:
        for group, values in run.summary.get("pass_at_k", {}).items():
            for k, value in values.items():
                low, high = run.summary.get("pass_at_k_ci95", {}).get(group, {}).get(k, [math.nan, math.nan])
                rows.append([run.label, run.suite, group, f"pass@{k}", _pct(value), f"[{_pct(low)}, {_pct(high)}]"])
    return [
        Heading("pass@k"),
        Table(["run", "suite", "group", "metric", "%", "95% CI"], rows),
        Para("95% CI: percentile bootstrap over problems (each run on its own; `ra3bench compare` pairs them)."),
    ]


def status_blocks(runs: Sequence[EvalRun], plot_dir: Path) -> list[Block]:
    rows = []
    for run in runs:
        counts = run.status_counts()
        total = sum(counts.values()) or 1
        rows.append([run.label, str(total)] + [f"{counts[s]} ({100 * counts[s] / total:.0f}%)" for s in STATUSES])
    image = plots.plot_status(runs, plot_dir / "status.png")
    return [
        Heading("Outcomes"),
        Table(["run", "samples", *STATUSES], rows),
        Image(image, "share of samples per status, per run"),
    ]


def _difficulty(meta: dict) -> str | None:
    value = meta.get("difficulty")
    if isinstance(value, str) and value:
        return value.lower()
    rating = meta.get("rating")
    if isinstance(rating, (int, float)) and rating > 0:
        low = int(rating) // 400 * 400
        return f"{low}-{low + 399}"
    letter = meta.get("difficulty_letter")
    return str(letter) if letter else None


def _month(meta: dict) -> str | None:
    value = meta.get("contest_date")
    return str(value)[:7] if value else None


FIELDS: dict[str, Callable[[dict], str | None]] = {"difficulty": _difficulty, "contest month": _month}


def _order(buckets: set[str]) -> list[str]:
    known = [b for b in DIFFICULTY_ORDER if b in buckets]
    return known + sorted(buckets - set(known), key=lambda b: (len(b.split("-")[0]), b))


def _coarsen(bucket_of: dict[str, str]) -> dict[str, str]:
    """Months grouped into quarters when there are more than 12 of them (a readable figure)."""
    if len(set(bucket_of.values())) <= 12 or not all(re.fullmatch(r"\d{4}-\d\d", b) for b in bucket_of.values()):
        return bucket_of
    return {t: f"{b[:4]}-Q{(int(b[5:]) - 1) // 3 + 1}" for t, b in bucket_of.items()}


def breakdown_blocks(runs: Sequence[EvalRun], plot_dir: Path, data_dir: Path | None) -> list[Block]:
    """pass@1 of the strictest group by difficulty / date, for suites whose problems carry them."""
    from ra3bench.suites import get_suite

    blocks: list[Block] = []
    by_suite: dict[tuple[str, str], list[EvalRun]] = {}
    for run in runs:
        by_suite.setdefault((run.suite, run.suite_version), []).append(run)
    for (name, version), group_runs in by_suite.items():
        try:
            problems = get_suite(name, version, data_dir).problem_map()
        except Ra3benchError as exc:
            blocks.append(Para(f"{name} {version}: no breakdown by difficulty or date (suite data: {exc})"))
            continue
        for field_name, get in FIELDS.items():
            tasks = set().union(*(run.tasks() for run in group_runs))
            bucket_of = {t: b for t in tasks if t in problems and (b := get(problems[t].metadata))}
            if len(set(bucket_of.values())) < 2:
                continue
            bucket_of = _coarsen(bucket_of) if field_name == "contest month" else bucket_of
            blocks += _breakdown(name, field_name, bucket_of, group_runs, plot_dir)
    return ([Heading("By difficulty and date"), *blocks]) if blocks else []


def _breakdown(suite: str, field_name: str, bucket_of: dict[str, str], runs: list[EvalRun], plot_dir: Path) -> list:
    buckets = _order(set(bucket_of.values()))
    group = runs[0].groups[-1]
    series: dict[str, list[tuple[float, float, float, int] | None]] = {}
    for run in runs:
        counts = run.counts(group)
        points: list[tuple[float, float, float, int] | None] = []
        for bucket in buckets:
            subset = {t: nc for t, nc in counts.items() if bucket_of.get(t) == bucket}
            result = pass_at_k_with_ci(subset, 1) if subset else None
            points.append((result.value, result.ci_low, result.ci_high, result.n_problems) if result else None)
        series[run.label] = points
    rows = [
        [bucket, *[f"{_pct(p[0])} [{_pct(p[1])}, {_pct(p[2])}] ({p[3]})" if p else "-" for p in ps]]
        for bucket, *ps in zip(buckets, *series.values(), strict=True)
    ]
    title = f"{suite} · {group} · pass@1 by {field_name}"
    image = plots.plot_breakdown(
        title, buckets, series, plot_dir / f"{_slug(suite)}-{_slug(field_name)}.png", "pass@1 (%)"
    )
    return [
        Heading(f"{suite}: pass@1 by {field_name}", 3),
        Table([field_name, *[f"{label} % [95% CI] (problems)" for label in series]], rows),
        Image(image, title),
    ]


def reference_curve(run: EvalRun) -> list[dict]:
    """An evaluation run as a one-point curve (a base model's level among training curves)."""
    points = []
    for group, values in run.summary.get("pass_at_k", {}).items():
        for k, value in values.items():
            low, high = run.summary.get("pass_at_k_ci95", {}).get(group, {}).get(k, [value, value])
            points.append(
                {
                    "kind": "eval",
                    "step": 0,
                    "tokens_seen": 0,
                    "wall_time_s": 0.0,
                    "suite": run.suite,
                    "group": group,
                    "k": int(k),
                    "pass_at_k": value,
                    "ci_low": low,
                    "ci_high": high,
                    "n_problems": run.summary.get("n_problems"),
                }
            )
    return points


def training_blocks(
    curves: Mapping[str, list[dict]], references: Sequence[EvalRun], plot_dir: Path, threshold: float | None
) -> list[Block]:
    """Curves overlaid, then per (suite, group, k) each run's first/final/best value, AUC and steps to threshold."""
    trained = {label: eval_series(curve) for label, curve in curves.items()}
    keys = sorted({key for series in trained.values() for key in series})
    suites = {key[0] for key in keys}
    overlaid = dict(curves) | {run.label: reference_curve(run) for run in references if run.suite in suites}
    image = plots.plot_training(overlaid, plot_dir / "curves.png", title="pass@k during training")
    rows = []
    uneven = False
    for key in keys:
        runs = {label: series[key] for label, series in trained.items() if key in series}
        shared = shared_steps(runs.values())
        uneven |= shared is not None
        level = threshold
        if level is None:  # the highest level every run reaches: who gets there first
            bests = [curve_metrics(pts)["best"] for pts in runs.values()]
            level = min((b for b in bests if b is not None), default=None)
        for label, pts in runs.items():
            m = curve_metrics(pts, threshold=level)
            reach = "never" if m["steps_to_threshold"] is None else str(m["steps_to_threshold"])
            rows.append(
                [
                    f"{key[0]} {key[1]} pass@{key[2]}",
                    label,
                    str(m["n_points"]),
                    _pct(m["first"]),
                    _pct(m["final"]),
                    f"{_pct(m['best'])} @ {m['best_step']}",
                    _pct(m["auc"]),
                    f"{_pct(level)}: {reach}",
                    shared_auc(pts, shared),
                ]
            )
    how = (
        f"threshold {100 * threshold:g}%" if threshold is not None else "threshold: the highest level every run reaches"
    )
    return [
        Heading("Training curves"),
        Image(image, "pass@k against the optimizer step, 95% intervals shaded; training loss below"),
        Table(TRAINING_COLUMNS, rows),
        Para(
            f"AUC: area under pass@k over steps divided by the step range (the mean level during training); {how}."
            + (
                " The runs of a series do not cover the same steps (one starts later, e.g. with eval.at_start "
                "off, or ends sooner), so their AUCs are not comparable; the last column is each run's AUC over "
                "the steps all of them cover."
                if uneven
                else ""
            )
        ),
    ]


TRAINING_COLUMNS = [
    "series",
    "run",
    "evals",
    "first %",
    "final %",
    "best % @ step",
    "AUC %",
    "steps to threshold",
    "AUC % on shared steps",
]


def shared_steps(runs: Iterable[Sequence[dict]]) -> tuple[int, int] | None:
    """The step range every run of a series covers, when their ranges differ (else None)."""
    ranges = {(min(int(p["step"]) for p in pts), max(int(p["step"]) for p in pts)) for pts in runs if pts}
    if len(ranges) < 2:
        return None
    return max(lo for lo, _ in ranges), min(hi for _, hi in ranges)


def shared_auc(points: Sequence[dict], shared: tuple[int, int] | None) -> str:
    """The AUC over the shared range, with the range; "same" where every run covers the same steps."""
    if shared is None:
        return "same"
    lo, hi = shared
    inside = [p for p in points if lo <= int(p["step"]) <= hi]
    if lo > hi or not inside:
        return "none shared"
    return f"{_pct(curve_metrics(inside)['auc'])} ({lo}–{hi})"


def build_report(
    eval_runs: Sequence[EvalRun],
    curves: Mapping[str, list[dict]],
    plot_dir: Path,
    *,
    threshold: float | None = None,
    data_dir: Path | None = None,
    methods: Sequence[tuple[str, Sequence[Path]]] = (),
    step: int | None = None,
    n_boot: int = 10_000,
) -> list[Block]:
    """Every section; ``methods`` (label, run folders: its seeds) are compared with the first of them."""
    from ra3bench.report.methods import method_blocks

    blocks: list[Block] = [Heading("ra3bench report", 1)]
    if curves:
        blocks += training_blocks(curves, eval_runs, plot_dir, threshold)
    blocks += method_blocks(methods, step=step, n_boot=n_boot)
    if eval_runs:
        blocks += run_blocks(eval_runs) + pass_blocks(eval_runs) + status_blocks(eval_runs, plot_dir)
        blocks += breakdown_blocks(eval_runs, plot_dir, data_dir)
    return blocks
