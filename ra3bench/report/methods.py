"""The report's comparison of methods: each method against the first, over its seeds and the problems.

A method is a label with one or more runs (``LABEL=PATH`` given several times, or a folder of
``seed-N`` runs from ``ra3bench train --seeds``). Each is compared with the first method that
could be loaded, suite by suite, as ``ra3bench compare`` compares them (training runs at the last
step all of them evaluated): with one run each the paired problem bootstrap, conditional on those
runs; with several, the hierarchical bootstrap over seeds and problems. A method that cannot be
compared (its evaluations moved, another problem set) gets a line saying why, not an error: the
rest of the report still stands.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from ra3bench.errors import UsageError
from ra3bench.report.base import Block, Heading, Para, Row, Table
from ra3bench.report.compare import compare_sides
from ra3bench.report.sides import SeedRun, Side, expand, load_seed, shared_step

COLUMNS = ["method vs reference", "series", "seeds", "problems", "ref. %", "method %", "Δ pp", "95% CI of Δ", "covers"]


def _pct(value: float) -> str:
    return f"{100 * value:.1f}" if math.isfinite(value) else "n/a"


def _pp(value: float) -> str:
    return f"{100 * value:+.1f}" if math.isfinite(value) else "n/a"


def covers(row: Row) -> str:
    """What variance the row's interval covers, in a few words."""
    if not row.seeded:
        return "problems only (one run each: conditional on the seed)"
    if row.n_seeds_base == 1 or row.n_seeds_candidate == 1:
        return "problems; seeds of the side with several only"
    return "seeds and problems"


def method_blocks(
    methods: Sequence[tuple[str, Sequence[Path]]], *, step: int | None = None, n_boot: int = 10_000
) -> list[Block]:
    """The "Method comparison" section: a table of every method against the reference, and why any is left out."""
    if len(methods) < 2:
        return []
    notes: list[str] = []
    expanded: list[tuple[str, list[Path]]] = []
    for label, paths in methods:
        try:
            expanded.append((label, expand(paths, label)))
        except UsageError as exc:
            notes.append(f"{label}: {exc}")
    try:
        at = shared_step([f for _, folders in expanded for f in folders], step)
    except UsageError as exc:
        return [Heading("Method comparison"), Para(f"No method comparison: {exc}")]
    sides: list[Side] = []
    for label, folders in expanded:
        try:
            sides.append(Side(label, [load_seed(f, at) for f in folders]))
        except UsageError as exc:
            notes.append(f"{label}: left out ({exc})")
    rows: list[list[str]] = []
    reference = sides[0] if sides else None
    for side in sides[1:]:
        assert reference is not None
        shared = {r.suite for s in reference.seeds for r in s.runs} & {r.suite for s in side.seeds for r in s.runs}
        if not shared:
            notes.append(f"{side.label}: no suite in common with {reference.label}")
            continue
        try:
            comparison = compare_sides(_only(reference, shared), _only(side, shared), n_boot=n_boot)
        except UsageError as exc:
            notes.append(f"{side.label} vs {reference.label}: {exc}")
            continue
        for row in comparison.rows:
            rows.append(
                [
                    f"{side.label} vs {reference.label}",
                    f"{row.suite} {row.group} pass@{row.k}",
                    f"{row.n_seeds_candidate} vs {row.n_seeds_base}",
                    str(row.n_problems),
                    _pct(row.base),
                    _pct(row.candidate),
                    _pp(row.delta),
                    f"[{_pp(row.ci_low)}, {_pp(row.ci_high)}]",
                    covers(row),
                ]
            )
    where = f" at step {at} (the last step every training run evaluated)" if at is not None and step is None else ""
    where = f" at step {at}" if step is not None else where
    blocks: list[Block] = [Heading("Method comparison")]
    if rows:
        blocks.append(Table(COLUMNS, rows))
        blocks.append(
            Para(
                f"Each method against {reference.label if reference else '?'}{where}. Δ: method - reference, "
                "percentage points, of the means over seeds. 95% CI: with one run per method, the paired "
                "bootstrap over problems, which holds the two runs fixed (conditional on their seeds); with "
                "several seeds, a hierarchical bootstrap over seeds (resampled within each method) and problems "
                f"(shared), {n_boot} resamples (`ra3bench compare` gives the tests and the regression verdict)."
            )
        )
    blocks += [Para(note) for note in notes]
    return blocks if len(blocks) > 1 else []


def _only(side: Side, suites: set[str]) -> Side:
    """The side restricted to the suites it shares with the other."""
    seeds = [SeedRun(s.source, [r for r in s.runs if r.suite in suites], s.step) for s in side.seeds]
    return Side(side.label, seeds)
