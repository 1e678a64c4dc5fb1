"""Training problem sets: problems with tests the sandbox can judge, kept apart from evaluation.

* ``mbpp-train``: the ``mbpp-train`` suite, MBPP's training split (task ids 601..974), built
  exactly as the ``mbpp`` suite builds its test split (prompt, instruction, entry point, the data
  set's asserts replayed), from the same pinned ``mbpp.jsonl.gz``. Task ids are ``Mbpp/<id>``,
  the form MBPP+ uses, so the overlap with an MBPP+ evaluation is visible by id (and the
  trainer refuses it).
* ``codeforces``: the ``codeforces`` suite (stdin programs, the data set's outputs), verifiable
  problems only.
* ``livecodebench``: LiveCodeBench problems with ``contest_date <= lcb_end_date`` (the suite's own
  date filter), so that an evaluation on a later window stays uncontaminated.

A problem set is a function in :data:`PROBLEM_SETS`; a test or a plugin may add its own.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ra3bench import Problem, Suite, UsageError, get_suite


@dataclass
class ProblemSet:
    """Problems of one suite; ``suite`` judges them (its name, version and data hash key the caches)."""

    name: str
    suite: Suite
    problems: list[Problem]
    selection: dict[str, Any] = field(default_factory=dict)  # how they were chosen, for the manifest


def _mbpp_train(cfg: Any, data_dir: Path | None) -> ProblemSet:
    suite = get_suite("mbpp-train", None, data_dir)
    return ProblemSet("mbpp-train", suite, suite.problems(), {"task_ids": "601..974"})


def _codeforces(cfg: Any, data_dir: Path | None) -> ProblemSet:
    suite = get_suite("codeforces", None, data_dir)
    problems = [p for p in suite.problems() if not p.unverifiable]
    return ProblemSet("codeforces", suite, problems, {"verifiable_only": True})


def _livecodebench(cfg: Any, data_dir: Path | None) -> ProblemSet:
    if not cfg.lcb_end_date:
        raise UsageError("trainer.lcb_end_date: the livecodebench problem set needs a cut-off date (YYYY-MM-DD)")
    suite = get_suite("livecodebench", None, data_dir)
    problems = suite.select(suite.problems(), end_date=cfg.lcb_end_date)
    return ProblemSet("livecodebench", suite, problems, {"end_date": cfg.lcb_end_date})


PROBLEM_SETS: dict[str, Callable[[Any, Path | None], ProblemSet]] = {
    "mbpp-train": _mbpp_train,
    "codeforces": _codeforces,
    "livecodebench": _livecodebench,
}


def load_problem_sets(cfg: Any, data_dir: Path | None) -> list[ProblemSet]:
    """The sets ``cfg.problems`` names, each cut to a seeded subset of ``cfg.max_problems`` if asked."""
    unknown = [name for name in cfg.problems if name not in PROBLEM_SETS]
    if unknown or not cfg.problems:
        raise UsageError(f"trainer.problems: unknown {unknown or 'none given'}; known: {', '.join(PROBLEM_SETS)}")
    sets = []
    for name in cfg.problems:
        chosen = PROBLEM_SETS[name](cfg, data_dir)
        if cfg.max_problems > 0 and len(chosen.problems) > cfg.max_problems:
            picked = random.Random(f"{cfg.problem_seed}:{name}").sample(range(len(chosen.problems)), cfg.max_problems)
            chosen.problems = [chosen.problems[i] for i in sorted(picked)]
            chosen.selection.update(max_problems=cfg.max_problems, problem_seed=cfg.problem_seed)
        if not chosen.problems:
            raise UsageError(f"trainer.problems: the {name} problem set is empty")
        sets.append(chosen)
    return sets


def problem_record(sets: list[ProblemSet], unusable: dict[str, str]) -> dict[str, Any]:
    """What the manifest records: per set, the suite, its data hash, the selection and every task id."""
    return {
        s.name: {
            **s.suite.describe(),
            "selection": s.selection,
            "n": len(s.problems),
            "task_ids": [p.task_id for p in s.problems],
            "left_out_no_reference": {t: why for t, why in unusable.items() if t.startswith(f"{s.name}:")},
        }
        for s in sets
    }
