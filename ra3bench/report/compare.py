"""`compare`: is the candidate run worse than the base run, problem by problem, beyond chance?

Two runs are compared only when their numbers mean the same thing: same suite, version and data
file, same samples per problem, same task set, same limits and scoring settings. Anything else
(the model, the sandbox kind, the host) may differ; the last two are noted.

With one run per side the statistics are paired over problems (:mod:`ra3bench.report.paired`):
conditional on those two runs. With several runs per side (training seeds,
:mod:`ra3bench.report.sides`) every run must be comparable with the base's first, and the
difference of the seed means gets the interval of :mod:`ra3bench.report.hierarchical`, which
covers seed variance as well as problem variance.
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
    per_problem,
)
from ra3bench.report.hierarchical import hierarchical_bootstrap_ci
from ra3bench.report.paired import paired_bootstrap_ci, paired_test
from ra3bench.report.sides import Side, load_sides

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


def differences(base: EvalRun, cand: EvalRun, names: tuple[str, str] = ("base", "candidate")) -> list[str]:
    """What makes the two runs' numbers incomparable, each said with both values; empty if none."""
    out: list[str] = []
    one, two = names

    def same(what: str, a: Any, b: Any) -> None:
        if a != b:
            out.append(f"{what} differs ({one} {_short(a)}, {two} {_short(b)})")

    same("suite", base.suite, cand.suite)
    same("suite version", base.suite_version, cand.suite_version)
    same("data sha256", base.data_sha256, cand.data_sha256)
    same("test groups", ",".join(base.groups), ",".join(cand.groups))
    n_base, n_cand = base.samples_per_problem(), cand.samples_per_problem()
    same("samples per problem (n)", "/".join(map(str, n_base)), "/".join(map(str, n_cand)))
    only_base, only_cand = base.tasks() - cand.tasks(), cand.tasks() - base.tasks()
    if only_base or only_cand:
        parts = [f"{len(only_base)} only in {one} ({_ids(list(only_base))})"] if only_base else []
        parts += [f"{len(only_cand)} only in {two} ({_ids(list(only_cand))})"] if only_cand else []
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


def choose_ks(base: EvalRun, cand: EvalRun, group: str, ks: Sequence[int] | None, *more: EvalRun) -> list[int]:
    """The requested ks (each must fit n), else every k all the summaries report."""
    runs = [base, cand, *more]
    n_min = min(n for run in runs for n in run.samples_per_problem())
    if ks:
        too_big = [k for k in ks if k > n_min]
        if too_big:
            raise UsageError(f"pass@{too_big[0]} needs {too_big[0]} samples per problem; {base.suite} has {n_min}")
        return sorted(set(ks))
    chosen = sorted(set.intersection(*(set(run.summary_ks(group)) for run in runs)))
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


def compare_seeds(
    base: list[EvalRun],
    cand: list[EvalRun],
    *,
    ks: Sequence[int] | None = None,
    alpha: float = 0.05,
    max_drop_pct: float = 0.0,
    n_boot: int = 10_000,
    seed: int = 0,
) -> list[Row]:
    """One row per (group, k) of one suite, several runs (seeds) per side: the seed means, their
    difference, the hierarchical bootstrap interval over seeds and problems, its p-value, the verdict."""
    first = base[0]
    tasks = sorted(first.tasks(), key=_natural)
    rows = []
    for group in first.groups:
        for k in choose_ks(first, cand[0], group, ks, *base[1:], *cand[1:]):
            x = [per_problem(run.counts(group), tasks, k) for run in base]
            y = [per_problem(run.counts(group), tasks, k) for run in cand]
            result = hierarchical_bootstrap_ci(x, y, n_boot=n_boot, seed=seed)
            significant = result.p_value < alpha
            delta = result.delta
            verdict = NO_CHANGE if not significant or delta == 0 else (REGRESSION if delta < 0 else IMPROVEMENT)
            rows.append(
                Row(
                    suite=first.suite,
                    group=group,
                    k=k,
                    n_problems=len(tasks),
                    base=float(sum(v.mean() for v in x) / len(x)),
                    candidate=float(sum(v.mean() for v in y) / len(y)),
                    delta=delta,
                    ci_low=result.ci_low,
                    ci_high=result.ci_high,
                    test="hierarchical bootstrap over seeds and problems",
                    p_value=result.p_value,
                    verdict=verdict,
                    fails=verdict == REGRESSION and -100 * delta > max_drop_pct + 1e-9,
                    n_seeds_base=len(base),
                    n_seeds_candidate=len(cand),
                )
            )
    return rows


def check_options(alpha: float, max_drop_pct: float, n_boot: int) -> None:
    if not 0 < alpha < 1:
        raise UsageError(f"--alpha must be between 0 and 1, got {alpha}")
    if max_drop_pct < 0:
        raise UsageError(f"--max-drop must be 0 or positive (percentage points), got {max_drop_pct}")
    if n_boot < 100:
        raise UsageError(f"--resamples must be at least 100, got {n_boot}")


def compare_sides(
    base: Side,
    cand: Side,
    *,
    ks: Sequence[int] | None = None,
    alpha: float = 0.05,
    max_drop_pct: float = 0.0,
    n_boot: int = 10_000,
    seed: int = 0,
) -> Comparison:
    """Compare two sides suite by suite: paired over problems with one run each, hierarchical over
    seeds and problems with more. Raises UsageError naming every difference that makes runs incomparable.

    Every run is checked against the base's first run (the reference), so that all of them measured
    the same problems the same way."""
    check_options(alpha, max_drop_pct, n_boot)
    options = {"ks": ks, "alpha": alpha, "max_drop_pct": max_drop_pct, "n_boot": n_boot, "seed": seed}
    seeded = len(base.seeds) + len(cand.seeds) > 2
    reference = base.seeds[0].runs
    # each run, by suite, next to the reference's run of that suite
    columns: list[list[tuple[EvalRun, EvalRun]]] = []
    problems: list[str] = []
    for side, i, run in [("base", i, s) for i, s in enumerate(base.seeds)] + [
        ("candidate", i, s) for i, s in enumerate(cand.seeds)
    ]:
        name = f"{side} seed {i + 1} ({run.source})" if seeded else side
        try:
            pairs = pair_runs(reference, run.runs)
        except UsageError as exc:
            raise UsageError(f"{name}: {exc}" if seeded else str(exc)) from None
        columns.append(pairs)
        for ref, other in pairs:
            if other is ref:
                continue
            where = (f"{ref.suite}: " if len(pairs) > 1 else "") + (f"{name}: " if seeded else "")
            names = ("base seed 1", "this run") if seeded else ("base", "candidate")
            problems += [where + d for d in differences(ref, other, names)]
    if problems:
        raise UsageError("runs are not comparable: " + "; ".join(problems))
    n_base = len(base.seeds)
    rows: list[Row] = []
    for j, (ref, _) in enumerate(columns[0]):
        base_runs = [pairs[j][1] for pairs in columns[:n_base]]
        cand_runs = [pairs[j][1] for pairs in columns[n_base:]]
        if seeded:
            rows += compare_seeds(base_runs, cand_runs, **options)
        else:
            rows += compare_pair(ref, cand_runs[0], **options)
    return Comparison(
        base=base.sources,
        candidate=cand.sources,
        alpha=alpha,
        max_drop_pct=max_drop_pct,
        n_boot=n_boot,
        rows=rows,
        notes=[note for b, c in zip(columns[0], columns[n_base], strict=True) for note in notes(b[1], c[1])],
    )


def compare_paths(
    base_path: Path | Sequence[Path],
    cand_path: Path | Sequence[Path],
    *,
    ks: Sequence[int] | None = None,
    alpha: float = 0.05,
    max_drop_pct: float = 0.0,
    n_boot: int = 10_000,
    seed: int = 0,
    step: int | None = None,
) -> Comparison:
    """Compare two run folders (or folders of run folders, suite by suite; training runs at ``step``);
    several folders per side (or folders of ``seed-N`` runs) are that side's seeds."""
    check_options(alpha, max_drop_pct, n_boot)
    base_paths = [base_path] if isinstance(base_path, (str, Path)) else list(base_path)
    cand_paths = [cand_path] if isinstance(cand_path, (str, Path)) else list(cand_path)
    base, cand = load_sides([("base", base_paths), ("candidate", cand_paths)], step=step)
    return compare_sides(base, cand, ks=ks, alpha=alpha, max_drop_pct=max_drop_pct, n_boot=n_boot, seed=seed)
