"""`compare`: is the candidate run worse than the base run, problem by problem, beyond chance?

Two runs are compared only when their numbers mean the same thing: same suite, version and data
file, same samples per problem, same task set, same limits and scoring settings. Anything else
(the model, the sandbox kind, the host) may differ; the last two are noted.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ra3bench.errors import UsageError
from ra3bench.report.base import (
    IMPROVEMENT,
    NO_CHANGE,
    REGRESSION,
    Comparison,
    EvalRun,
    Row,
    find_runs,
    per_problem,
)
from ra3bench.report.paired import paired_bootstrap_ci, paired_test

SHOWN = 4  # task ids named per difference before "..."


def _ids(ids: Sequence[str]) -> str:
    ids = sorted(ids, key=_natural)
    more = f", ... {len(ids) - SHOWN} more" if len(ids) > SHOWN else ""
    return ", ".join(ids[:SHOWN]) + more


def _natural(task_id: str) -> tuple:
    head, _, tail = task_id.rpartition("/")
    return (head, int(tail)) if tail.isdigit() else (task_id, 0)


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, sub in value.items():
            out.update(_flatten(sub, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def _short(value: Any) -> str:
    text = str(value)
    return text[:12] + "..." if len(text) > 16 and all(c in "0123456789abcdef" for c in text) else text


def differences(base: EvalRun, cand: EvalRun) -> list[str]:
    """What makes the two runs' numbers incomparable, each said with both values; empty if none."""
    out: list[str] = []

    def same(what: str, a: Any, b: Any) -> None:
        if a != b:
            out.append(f"{what} differs (base {_short(a)}, candidate {_short(b)})")

    same("suite", base.suite, cand.suite)
    same("suite version", base.suite_version, cand.suite_version)
    same("data sha256", base.data_sha256, cand.data_sha256)
    same("test groups", ",".join(base.groups), ",".join(cand.groups))
    n_base, n_cand = base.samples_per_problem(), cand.samples_per_problem()
    same("samples per problem (n)", "/".join(map(str, n_base)), "/".join(map(str, n_cand)))
    only_base, only_cand = base.tasks() - cand.tasks(), cand.tasks() - base.tasks()
    if only_base or only_cand:
        parts = [f"{len(only_base)} only in base ({_ids(list(only_base))})"] if only_base else []
        parts += [f"{len(only_cand)} only in candidate ({_ids(list(only_cand))})"] if only_cand else []
        out.append("task set differs: " + " and ".join(parts))
    for section in ("settings", "scoring"):
        flat_b, flat_c = _flatten(base.manifest.get(section, {})), _flatten(cand.manifest.get(section, {}))
        for key in sorted(set(flat_b) | set(flat_c)):
            same(f"{section}.{key}", flat_b.get(key, "unset"), flat_c.get(key, "unset"))
    return out


def notes(base: EvalRun, cand: EvalRun) -> list[str]:
    """Differences worth a reader's attention that do not change what the numbers mean."""
    out = []
    pairs = {
        "sandbox": ("sandbox", "kind"),
        "expected outputs": ("expected_outputs", "key"),
        "python": ("host", "python"),
    }
    for what, (section, key) in pairs.items():
        a, b = base.manifest.get(section, {}).get(key), cand.manifest.get(section, {}).get(key)
        if a != b:
            out.append(f"{base.suite}: {what} differs (base {a}, candidate {b})")
    return out


def pair_runs(base_runs: list[EvalRun], cand_runs: list[EvalRun]) -> list[tuple[EvalRun, EvalRun]]:
    """Base and candidate runs matched by suite; a suite on one side only is an error."""

    def by_suite(runs: list[EvalRun], side: str) -> dict[str, EvalRun]:
        out: dict[str, EvalRun] = {}
        for run in runs:
            if run.suite in out:
                raise UsageError(f"{side} holds two runs of {run.suite} ({out[run.suite].root}, {run.root})")
            out[run.suite] = run
        return out

    base, cand = by_suite(base_runs, "base"), by_suite(cand_runs, "candidate")
    if set(base) != set(cand):
        only_b, only_c = sorted(set(base) - set(cand)), sorted(set(cand) - set(base))
        what = [f"only in base: {', '.join(only_b)}"] if only_b else []
        what += [f"only in candidate: {', '.join(only_c)}"] if only_c else []
        raise UsageError(f"runs are not comparable: suites differ ({'; '.join(what)})")
    return [(base[s], cand[s]) for s in sorted(base)]


def choose_ks(base: EvalRun, cand: EvalRun, group: str, ks: Sequence[int] | None) -> list[int]:
    """The requested ks (each must fit n), else every k both summaries report."""
    n_min = min(base.samples_per_problem() + cand.samples_per_problem())
    if ks:
        too_big = [k for k in ks if k > n_min]
        if too_big:
            raise UsageError(f"pass@{too_big[0]} needs {too_big[0]} samples per problem; {base.suite} has {n_min}")
        return sorted(set(ks))
    chosen = sorted(set(base.summary_ks(group)) & set(cand.summary_ks(group)))
    return chosen or [1]


def compare_pair(
    base: EvalRun,
    cand: EvalRun,
    *,
    ks: Sequence[int] | None = None,
    alpha: float = 0.05,
    max_drop_pct: float = 0.0,
    n_boot: int = 10_000,
    seed: int = 0,
) -> list[Row]:
    """One row per (group, k): scores, delta, paired bootstrap CI, paired test, verdict, flips."""
    tasks = sorted(base.tasks(), key=_natural)
    rows = []
    for group in base.groups:
        counts_b, counts_c = base.counts(group), cand.counts(group)
        for k in choose_ks(base, cand, group, ks):
            x, y = per_problem(counts_b, tasks, k), per_problem(counts_c, tasks, k)
            delta = float(y.mean() - x.mean())
            low, high = paired_bootstrap_ci(x, y, n_boot=n_boot, seed=seed)
            test, p = paired_test(x, y, seed=seed)
            significant = p < alpha
            verdict = NO_CHANGE if not significant or delta == 0 else (REGRESSION if delta < 0 else IMPROVEMENT)
            rows.append(
                Row(
                    suite=base.suite,
                    group=group,
                    k=k,
                    n_problems=len(tasks),
                    base=float(x.mean()),
                    candidate=float(y.mean()),
                    delta=delta,
                    ci_low=low,
                    ci_high=high,
                    test=test,
                    p_value=p,
                    verdict=verdict,
                    fails=verdict == REGRESSION and -100 * delta > max_drop_pct + 1e-9,
                    lost=[t for t, a, b in zip(tasks, x, y, strict=True) if b < a - 1e-12],
                    gained=[t for t, a, b in zip(tasks, x, y, strict=True) if b > a + 1e-12],
                )
            )
    return rows


def compare_paths(
    base_path: Path,
    cand_path: Path,
    *,
    ks: Sequence[int] | None = None,
    alpha: float = 0.05,
    max_drop_pct: float = 0.0,
    n_boot: int = 10_000,
    seed: int = 0,
) -> Comparison:
    """Compare two run folders (or two folders of run folders, suite by suite).

    Raises UsageError naming every difference when the runs are not comparable.
    """
    if not 0 < alpha < 1:
        raise UsageError(f"--alpha must be between 0 and 1, got {alpha}")
    if max_drop_pct < 0:
        raise UsageError(f"--max-drop must be 0 or positive (percentage points), got {max_drop_pct}")
    if n_boot < 100:
        raise UsageError(f"--resamples must be at least 100, got {n_boot}")
    pairs = pair_runs(find_runs(base_path), find_runs(cand_path))
    problems = [f"{b.suite}: {d}" if len(pairs) > 1 else d for b, c in pairs for d in differences(b, c)]
    if problems:
        raise UsageError("runs are not comparable: " + "; ".join(problems))
    rows: list[Row] = []
    for b, c in pairs:
        rows += compare_pair(b, c, ks=ks, alpha=alpha, max_drop_pct=max_drop_pct, n_boot=n_boot, seed=seed)
    return Comparison(
        base=str(base_path),
        candidate=str(cand_path),
        alpha=alpha,
        max_drop_pct=max_drop_pct,
        n_boot=n_boot,
        rows=rows,
        notes=[note for b, c in pairs for note in notes(b, c)],
    )
