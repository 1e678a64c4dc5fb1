"""A run's scores: pass@k per test group with intervals, status counts, coverage.

:class:`Summary` is what :meth:`ra3bench.Session.evaluate` returns and what the CLI prints;
``to_json`` is ``summary.json`` (the schema reports, ``compare`` and curves read) and
``from_json`` reads one back.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from tabulate import tabulate

from ra3bench.metrics import ks_for, pass_at_k_with_ci
from ra3bench.records import Status
from ra3bench.suites.base import Problem, Suite


@dataclass
class Summary:
    suite: str
    suite_version: str
    data_sha256: str
    n_problems: int  # problems with at least one scored sample
    n_suite_problems: int
    n_samples: int
    samples_per_problem: list[int]
    pass_at_k: dict[str, dict[str, float]]  # group -> str(k) -> value
    pass_at_k_ci95: dict[str, dict[str, list[float]]]  # group -> str(k) -> [low, high]
    status_counts: dict[str, int]
    group_status_counts: dict[str, dict[str, int]]
    flaky: int
    unverifiable: dict[str, Any]  # {"excluded_from_scores": bool, "tasks": {task_id: why}}
    execution: dict[str, int] = field(default_factory=dict)  # executed / from_verdict_cache / from_run_folder
    # where the numbers came from and what they cost (not part of summary.json)
    run_dir: str | None = None
    eval_time_s: float = 0.0

    _JSON_EXCLUDED: ClassVar[tuple[str, ...]] = ("run_dir", "eval_time_s")

    def pass_at(self, k: int, group: str | None = None) -> float:
        """pass@k of ``group`` (default: the strictest one, e.g. ``plus`` for HumanEval+)."""
        group = group or list(self.pass_at_k)[-1]
        return self.pass_at_k[group][str(k)]

    def to_json(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in self._JSON_EXCLUDED}

    @classmethod
    def from_json(cls, data: dict, *, run_dir: str | None = None, eval_time_s: float = 0.0) -> Summary:
        known = {f.name: data[f.name] for f in fields(cls) if f.name in data and f.name not in cls._JSON_EXCLUDED}
        return cls(**{**known, "run_dir": run_dir, "eval_time_s": eval_time_s})

    def table(self, fmt: str = "github") -> str:
        """pass@k with its 95% interval, one row per group and k: a table to paste."""
        rows = []
        for group, values in self.pass_at_k.items():
            for k, value in values.items():
                low, high = self.pass_at_k_ci95[group][k]
                rows.append([group, f"pass@{k}", f"{100 * value:.1f}", f"[{100 * low:.1f}, {100 * high:.1f}]"])
        head = ["group", "metric", "%", "95% CI"]
        return tabulate(rows, headers=head, tablefmt=fmt, disable_numparse=True)


def summarize(
    suite: Suite,
    problems: list[Problem],
    verdicts: list[dict],
    ks: list[int] | None = None,
    *,
    include_unverifiable: bool = False,
) -> Summary:
    """pass@k per group (plus = base and plus both pass), intervals, status counts, coverage.

    Problems marked ``unverifiable`` (several valid answers and no checker) are judged but left
    out of every score unless ``include_unverifiable``; the summary lists them with the reason.
    """
    unverifiable = {p.task_id: p.unverifiable for p in problems if p.unverifiable}
    latest: dict[tuple[str, int], dict] = {}
    for v in verdicts:
        if include_unverifiable or v["task_id"] not in unverifiable:
            latest[(v["task_id"], v["sample_index"])] = v
    per_group: dict[str, dict[str, tuple[int, int]]] = {g: {} for g in suite.group_names}
    for (task_id, _), v in latest.items():
        for i, group in enumerate(suite.group_names):
            n, c = per_group[group].get(task_id, (0, 0))
            # a group the problem does not have (no public tests, only private ones) does not fail it
            passed = all(v["groups"].get(g, Status.PASS.value) == Status.PASS.value for g in suite.group_names[: i + 1])
            per_group[group][task_id] = (n + 1, c + int(passed))
    pass_at_k: dict[str, dict[str, float]] = {}
    intervals: dict[str, dict[str, list[float]]] = {}
    base_counts = per_group[suite.group_names[0]]
    for group, counts in per_group.items():
        pass_at_k[group], intervals[group] = {}, {}
        for k in ks_for(counts, ks):
            result = pass_at_k_with_ci(counts, k)
            pass_at_k[group][str(k)] = result.value
            intervals[group][str(k)] = [result.ci_low, result.ci_high]
    covered = {t for t, _ in latest}
    return Summary(
        suite=suite.name,
        suite_version=suite.version,
        data_sha256=suite.data_sha256,
        n_problems=len(covered),
        n_suite_problems=suite.n_problems(),
        n_samples=len(latest),
        samples_per_problem=sorted({n for n, _ in base_counts.values()}),
        pass_at_k=pass_at_k,
        pass_at_k_ci95=intervals,
        status_counts=dict(Counter(v["status"] for v in latest.values())),
        group_status_counts={
            g: dict(Counter(v["groups"].get(g, "missing") for v in latest.values())) for g in suite.group_names
        },
        flaky=sum(1 for v in latest.values() if v.get("flaky")),
        unverifiable={
            "excluded_from_scores": bool(unverifiable) and not include_unverifiable,
            "tasks": dict(sorted(unverifiable.items())),
        },
    )
