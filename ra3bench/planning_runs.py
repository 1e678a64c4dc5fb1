"""What a finished run tells the planner: its design, its pass rate, per-problem results, its speed.

A RUN is an evaluation run folder (``ra3bench run`` / ``evaluate``: manifest, summary, verdicts),
a training run folder (``curve.jsonl``, whose latest evaluation of the suite is read, and its
``evals/step-N/<suite>`` folder when it is there), or one of those ``evals/step-N/<suite>`` folders.
Copies that keep only ``manifest.json`` and ``summary.json`` (docs/experiments/) give the design and
the pass rate, not the per-problem results.

Speed is measured, never assumed: a training run's ``eval_time_s`` (the wall time of each
evaluation point, generation and judging overlapped) over its samples; an evaluation run's wall
time from its manifest's ``created`` to the moment ``summary.json`` was written, taken only when the
two clocks agree (a copied folder's file times say nothing); judging alone from the verdicts'
``wall_s`` over the sandbox's workers.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ra3bench.errors import UsageError
from ra3bench.results import MANIFEST, SUMMARY, VERDICTS, host_info, read_jsonl

CURVE = "curve.jsonl"  # ra3bench.training.curves.CURVE, without importing the training stack
MIN_SECONDS_PER_SAMPLE = 1e-3  # faster than this, an evaluation point was not measured but read back
PLAUSIBLE_WALL_S = 7 * 86400  # longer than this from `created` to summary.json: file times of a copy


@dataclass
class Throughput:
    """Seconds of wall time per sample of one evaluation (generation and judging), where measured."""

    seconds_per_sample: float
    samples: int  # samples the time was measured over
    source: str  # how: "eval_time_s of 3 evaluation points in curve.jsonl", ...
    judging_seconds_per_sample: float | None = None
    host: dict = field(default_factory=dict)

    def same_machine(self) -> bool:
        here = host_info()
        return (self.host.get("cores"), self.host.get("cpu")) == (here["cores"], here["cpu"])


@dataclass
class MeasuredRun:
    """One evaluation of ``suite`` read from a run folder."""

    path: Path
    suite: str
    group: str
    problems: int
    samples: int  # n: samples per problem
    rate: float  # pass@1 of ``group``, a fraction
    what: str  # "run folder", "training run, step 48", ...
    per_problem: dict[str, tuple[int, int]] | None = None  # task -> (samples, passed), when verdicts are here
    throughput: Throughput | None = None


def read_run(path: Path, suite: str, group: str | None = None) -> MeasuredRun:
    """The evaluation of ``suite`` in ``path`` (see the module docstring); a UsageError says what is missing."""
    path = Path(path)
    if not path.is_dir():
        raise UsageError(f"--from-run {path}: no such folder")
    if (path / CURVE).is_file():
        return _training_run(path, suite, group)
    if (path / MANIFEST).is_file() and (path / SUMMARY).is_file():
        return _eval_folder(path, suite, group, _curve_time(path))
    raise UsageError(f"--from-run {path}: not a run folder (no {MANIFEST} + {SUMMARY}) nor a training run (no {CURVE})")


def _load(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"--from-run: cannot read {path} ({exc})") from None


def _eval_folder(path: Path, suite: str, group: str | None, timed: Throughput | None) -> MeasuredRun:
    manifest, summary = _load(path / MANIFEST), _load(path / SUMMARY)
    found = manifest.get("suite", {}).get("suite", summary.get("suite"))
    if found != suite:
        raise UsageError(f"--from-run {path} is a {found} run; plan --suite {found}, or give a {suite} run")
    groups = list(summary.get("pass_at_k", {}))
    group = _group(group, groups, path)
    ns = summary.get("samples_per_problem") or [manifest.get("n", 1)]
    if len(ns) != 1:
        raise UsageError(f"--from-run {path}: problems have different sample counts ({ns}); give -n and --base-rate")
    rate = summary["pass_at_k"][group].get("1")
    if rate is None:
        raise UsageError(f"--from-run {path}: its summary has no pass@1 for group {group}")
    per_problem = None
    throughput = timed
    if (path / VERDICTS).is_file():
        from ra3bench.report.base import load_run

        run = load_run(path)
        per_problem = run.counts(group)
        judging = _judging_time(run.verdicts, manifest)
        if throughput is None:
            throughput = _file_time(path, manifest, len(run.verdicts))
        if throughput is not None and judging is not None:
            throughput.judging_seconds_per_sample = judging
    what = f"run folder {path}"
    return MeasuredRun(
        path, suite, group, int(summary["n_problems"]), int(ns[0]), float(rate), what, per_problem, throughput
    )


def _group(group: str | None, groups: list[str], path: Path) -> str:
    if not groups:
        raise UsageError(f"--from-run {path}: no pass@k in it")
    if group is None:
        return groups[-1]  # the strictest: plus, LiveCodeBench's all
    if group not in groups:
        raise UsageError(f"--from-run {path}: no group {group!r}; it has {', '.join(groups)}")
    return group


def _eval_rows(curve: Path) -> list[dict]:
    return [row for row in read_jsonl(curve) if row.get("kind") == "eval"]


def _training_run(path: Path, suite: str, group: str | None) -> MeasuredRun:
    rows = [row for row in _eval_rows(path / CURVE) if row.get("suite") == suite]
    if not rows:
        suites = sorted({row.get("suite", "?") for row in _eval_rows(path / CURVE)})
        raise UsageError(
            f"--from-run {path}: no {suite} evaluation in its {CURVE} (it has {', '.join(suites) or 'none'})"
        )
    last = max(row["step"] for row in rows)
    latest = [row for row in rows if row["step"] == last and row.get("k") == 1]
    group = _group(group, list(dict.fromkeys(row["group"] for row in latest)), path)
    row = next(r for r in latest if r["group"] == group)
    throughput = _curve_throughput(path, rows)
    folder = path / str(row.get("run_dir", ""))
    if row.get("run_dir") and (folder / MANIFEST).is_file() and (folder / SUMMARY).is_file():
        measured = _eval_folder(folder, suite, group, throughput)
    else:
        problems = int(row["n_problems"])
        n = int(row["n_samples"]) // problems
        measured = MeasuredRun(folder, suite, group, problems, n, float(row["pass_at_k"]), "", None, throughput)
    measured.what = f"training run {path}, step {last}"
    return measured


def _curve_throughput(run: Path, rows: list[dict]) -> Throughput | None:
    """eval_time_s over samples, each evaluation point once (its rows share the time); points that took
    next to no time left out: step 0 borrowed with eval.start_from, a point a resumed run had finished."""
    points = {
        (row["step"], row["suite"]): row
        for row in rows
        if float(row.get("eval_time_s", 0)) > MIN_SECONDS_PER_SAMPLE * int(row.get("n_samples", 0))
    }
    if not points:
        return None
    seconds = sum(float(row["eval_time_s"]) for row in points.values())
    samples = sum(int(row["n_samples"]) for row in points.values())
    host = _load(run / MANIFEST).get("host", {}) if (run / MANIFEST).is_file() else {}
    source = f"eval_time_s of {len(points)} evaluation point(s) in {run / CURVE}"
    return Throughput(seconds / samples, samples, source, host=host)


def _curve_time(folder: Path) -> Throughput | None:
    """An ``evals/step-N/<suite>`` folder: the time its training run's curve measured for it."""
    run = folder.parent.parent.parent
    if not (run / CURVE).is_file():
        return None
    rows = [row for row in _eval_rows(run / CURVE) if (run / str(row.get("run_dir", ""))).resolve() == folder.resolve()]
    return _curve_throughput(run, rows) if rows else None


def _file_time(path: Path, manifest: dict, samples: int) -> Throughput | None:
    try:
        created = dt.datetime.fromisoformat(manifest["created"]).timestamp()
        wall = (path / SUMMARY).stat().st_mtime - created
    except (KeyError, ValueError, OSError):
        return None
    if not 0 < wall < PLAUSIBLE_WALL_S or samples == 0:
        return None
    source = f"{path}: manifest created -> {SUMMARY} written (file times)"
    return Throughput(wall / samples, samples, source, host=manifest.get("host", {}))


def _judging_time(verdicts: list[dict], manifest: dict) -> float | None:
    """The sandbox's share per sample: the verdicts' wall time over the workers that ran them."""
    workers = int(manifest.get("sandbox", {}).get("workers") or 0)
    if not verdicts or workers < 1:
        return None
    return sum(float(v.get("wall_s", 0.0)) for v in verdicts) / workers / len(verdicts)


def pooled_counts(runs: list[MeasuredRun]) -> tuple[np.ndarray, np.ndarray] | None:
    """(samples, passed) of every problem of every run with per-problem results (for a Beta fit)."""
    pairs = [pair for run in runs if run.per_problem for pair in run.per_problem.values()]
    if not pairs:
        return None
    return np.array([n for n, _ in pairs]), np.array([c for _, c in pairs])


def seed_counts(runs: list[MeasuredRun]) -> tuple[list[np.ndarray], list[np.ndarray]] | None:
    """Per run, (samples, passed) over the problems every run has: for the seed sd, or None."""
    if len(runs) < 2 or any(run.per_problem is None for run in runs):
        return None
    tasks = sorted(set.intersection(*(set(run.per_problem or {}) for run in runs)))
    if not tasks:
        return None
    samples = [np.array([run.per_problem[t][0] for t in tasks]) for run in runs if run.per_problem]
    passed = [np.array([run.per_problem[t][1] for t in tasks]) for run in runs if run.per_problem]
    return samples, passed
