"""What `compare` and `report` read from run folders, and what they hand to the renderers.

Scores are recomputed from ``verdicts.jsonl`` (the summary keeps means, not the per-problem
outcomes a paired test needs), with the rule of :func:`ra3bench.summary.summarize`: the last
verdict of each (task, sample) counts, group *i* passes when groups 0..i all pass, and problems
the summary lists as unverifiable are left out unless the run scored them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ra3bench.errors import UsageError
from ra3bench.metrics import pass_at_k
from ra3bench.results import MANIFEST, SUMMARY, VERDICTS, read_jsonl
from ra3bench.training.curves import CURVE

STATUSES = ("pass", "fail", "error", "timeout", "memory", "syntax", "sandbox_error")


@dataclass
class EvalRun:
    """One evaluation run folder (manifest, verdicts, summary), as the reports need it."""

    root: Path
    manifest: dict
    summary: dict
    verdicts: list[dict]  # the last verdict of each (task, sample), in file order
    label: str = ""

    @property
    def suite(self) -> str:
        return str(self.manifest.get("suite", {}).get("suite", self.summary.get("suite", "?")))

    @property
    def suite_version(self) -> str:
        return str(self.manifest.get("suite", {}).get("suite_version", self.summary.get("suite_version", "?")))

    @property
    def data_sha256(self) -> str:
        return str(self.manifest.get("suite", {}).get("data_sha256", self.summary.get("data_sha256", "")))

    @property
    def groups(self) -> list[str]:
        groups = self.manifest.get("suite", {}).get("groups") or list(self.summary.get("pass_at_k", {}))
        return [str(g) for g in groups]

    @property
    def excluded(self) -> set[str]:
        """Tasks left out of every score (unverifiable, unless the run scored them)."""
        info = self.summary.get("unverifiable", {})
        return set(info.get("tasks", {})) if info.get("excluded_from_scores") else set()

    def scored(self) -> list[dict]:
        excluded = self.excluded
        return [v for v in self.verdicts if v["task_id"] not in excluded]

    def counts(self, group: str) -> dict[str, tuple[int, int]]:
        """task id -> (samples, samples passing ``group`` and every group before it)."""
        needed = self.groups[: self.groups.index(group) + 1]
        out: dict[str, tuple[int, int]] = {}
        for v in self.scored():
            n, c = out.get(v["task_id"], (0, 0))
            passed = all(v.get("groups", {}).get(g) == "pass" for g in needed)
            out[v["task_id"]] = (n + 1, c + int(passed))
        return out

    def tasks(self) -> set[str]:
        return {v["task_id"] for v in self.scored()}

    def samples_per_problem(self) -> list[int]:
        return sorted({n for n, _ in self.counts(self.groups[0]).values()})

    def summary_ks(self, group: str) -> list[int]:
        return sorted(int(k) for k in self.summary.get("pass_at_k", {}).get(group, {}))

    def status_counts(self) -> dict[str, int]:
        counts = {s: 0 for s in STATUSES}
        for v in self.scored():
            counts[v["status"]] = counts.get(v["status"], 0) + 1
        return counts


def per_problem(counts: dict[str, tuple[int, int]], tasks: list[str], k: int) -> np.ndarray:
    """pass@k of each task in ``tasks`` (in that order): the unbiased estimator per problem."""
    return np.array([pass_at_k(*counts[t], k) for t in tasks], dtype=float)


def is_run_folder(path: Path) -> bool:
    return (path / MANIFEST).is_file() and (path / VERDICTS).is_file()


def is_training_run(path: Path) -> bool:
    return (path / CURVE).is_file()


def load_run(path: Path, label: str = "") -> EvalRun:
    """The run folder at ``path``; a UsageError saying what is missing otherwise."""
    path = Path(path)
    if not path.is_dir():
        raise UsageError(f"{path}: no such run folder")
    missing = [name for name in (MANIFEST, VERDICTS, SUMMARY) if not (path / name).is_file()]
    if missing:
        raise UsageError(f"{path} is not a finished run folder (no {', '.join(missing)})")
    try:
        manifest = json.loads((path / MANIFEST).read_text())
        summary = json.loads((path / SUMMARY).read_text())
    except ValueError as exc:
        raise UsageError(f"{path}: unreadable manifest or summary ({exc})") from None
    latest: dict[tuple[str, int], dict] = {}
    for v in read_jsonl(path / VERDICTS):
        latest[(v["task_id"], v["sample_index"])] = v
    if not latest:
        raise UsageError(f"{path}/{VERDICTS} holds no verdicts")
    return EvalRun(path, manifest, summary, list(latest.values()), label or path.name)


def find_runs(path: Path) -> list[EvalRun]:
    """``path`` itself if it is a run folder, else the run folders directly inside it (a baselines folder)."""
    path = Path(path)
    if is_run_folder(path):
        return [load_run(path)]
    if not path.is_dir():
        raise UsageError(f"{path}: no such run folder")
    runs = [load_run(sub) for sub in sorted(path.iterdir()) if sub.is_dir() and is_run_folder(sub)]
    if not runs:
        raise UsageError(f"{path} is not a run folder and holds none (no {MANIFEST} + {VERDICTS})")
    return runs


@dataclass
class Row:
    """One (suite, group, k) of a comparison: both scores, the paired statistics, the verdict."""

    suite: str
    group: str
    k: int
    n_problems: int
    base: float  # fractions 0..1
    candidate: float
    delta: float  # candidate - base
    ci_low: float  # paired bootstrap interval of delta
    ci_high: float
    test: str  # which paired test gave p_value
    p_value: float
    verdict: str  # REGRESSION | IMPROVEMENT | NO_CHANGE
    fails: bool  # a significant regression larger than --max-drop
    lost: list[str] = field(default_factory=list)  # tasks worse in the candidate
    gained: list[str] = field(default_factory=list)  # tasks better in the candidate
    n_seeds_base: int = 1  # runs (training seeds) per side: 1 and 1, the paired statistics over problems
    n_seeds_candidate: int = 1  # (conditional on those runs); more, the hierarchical bootstrap

    @property
    def seeded(self) -> bool:
        """The interval covers seed variance (several runs on a side), not only problem variance."""
        return self.n_seeds_base > 1 or self.n_seeds_candidate > 1

    @property
    def name(self) -> str:
        return f"{self.suite} {self.group} pass@{self.k}"


REGRESSION = "regression"
IMPROVEMENT = "improvement"
NO_CHANGE = "no significant change"


@dataclass
class Comparison:
    """Everything a comparison format renders."""

    base: str
    candidate: str
    alpha: float
    max_drop_pct: float
    n_boot: int
    rows: list[Row]
    notes: list[str] = field(default_factory=list)  # differences that do not block the comparison

    @property
    def failed(self) -> bool:
        return any(row.fails for row in self.rows)

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def to_json(self) -> dict[str, Any]:
        return {
            "base": self.base,
            "candidate": self.candidate,
            "alpha": self.alpha,
            "max_drop_pct": self.max_drop_pct,
            "bootstrap_resamples": self.n_boot,
            "failed": self.failed,
            "notes": self.notes,
            "rows": [row.__dict__ | {"name": row.name} for row in self.rows],
        }


# -- what `report` hands to its renderers (report.md, report.html) ----------------------------


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Para:
    text: str  # plain text; `code` spans are kept by both renderers


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]
    caption: str = ""


@dataclass
class Image:
    path: Path  # a PNG written by ra3bench.report.plots
    alt: str


Block = Heading | Para | Table | Image
