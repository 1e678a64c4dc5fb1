"""One side of a comparison: a method's runs, one per training seed, each as its evaluation run folders.

A side is given as folders, each one of:

* an evaluation run folder (``ra3bench run`` / ``evaluate``), or a folder of them (one per suite,
  e.g. ``results/baselines/`` or a training run's ``evals/step-N``): one run;
* a training run folder (``curve.jsonl``): one run, measured by its evaluation at a step (the
  last step every training run of the comparison evaluated, or ``--step N``), found through
  ``curve.jsonl``'s ``run_dir`` (which also points at a borrowed ``eval.start_from``);
* a folder of ``seed-N`` folders (``ra3bench train --seeds``' ``run.out``, or one ``--each``
  label in it): one run per seed.

Several folders on one side are several seeds of the same method.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ra3bench.errors import UsageError
from ra3bench.report.base import EvalRun, find_runs, is_run_folder, is_training_run, load_run
from ra3bench.training.curves import read_curve

SEED_FOLDER = re.compile(r"seed-(\d+)")


@dataclass
class SeedRun:
    """One run of a method (one training seed, or one evaluation) as its evaluation runs, one per suite."""

    source: Path  # the folder it came from
    runs: list[EvalRun]
    step: int | None = None  # a training run: the step whose evaluation this is


@dataclass
class Side:
    label: str
    seeds: list[SeedRun]

    @property
    def sources(self) -> str:
        return " ".join(str(seed.source) for seed in self.seeds)


def seed_folders(path: Path) -> list[Path]:
    """The ``seed-N`` folders directly inside ``path``, by N; empty when there are none."""
    if not path.is_dir() or is_run_folder(path) or is_training_run(path):
        return []
    found = [(int(m.group(1)), sub) for sub in path.iterdir() if (m := SEED_FOLDER.fullmatch(sub.name))]
    return [sub for _, sub in sorted(found) if sub.is_dir()]


def expand(paths: Sequence[Path], side: str) -> list[Path]:
    """One folder per seed: each path, or its ``seed-N`` folders; the same folder twice is refused."""
    out: list[Path] = []
    for path in map(Path, paths):
        if not path.exists():
            raise UsageError(f"{path}: no such run folder")
        for folder in seed_folders(path) or [path]:
            if folder.resolve() in {f.resolve() for f in out}:
                raise UsageError(f"{side}: {folder} is given twice (each folder is one seed)")
            out.append(folder)
    return out


def training_evals(folder: Path) -> dict[int, dict[str, Path]]:
    """A training run's evaluations: step -> suite -> its run folder (``curve.jsonl``'s ``run_dir``)."""
    out: dict[int, dict[str, Path]] = {}
    for point in read_curve(folder):
        if point.get("kind") == "eval" and point.get("run_dir"):
            out.setdefault(int(point["step"]), {})[str(point["suite"])] = folder / str(point["run_dir"])
    return out


def shared_step(folders: Sequence[Path], step: int | None) -> int | None:
    """The step at which the training runs among ``folders`` are compared: ``step``, which every one must
    have evaluated, or else the last step all of them evaluated. None when none is a training run."""
    steps = {folder: set(training_evals(folder)) for folder in folders if is_training_run(folder)}
    if not steps:
        return None
    if step is not None:
        for folder, have in steps.items():
            if step not in have:
                listed = ", ".join(map(str, sorted(have))) or "none"
                raise UsageError(f"--step {step}: {folder} did not evaluate step {step} (its evaluations: {listed})")
        return step
    common = set.intersection(*steps.values())
    if not common:
        lists = "; ".join(f"{f}: {', '.join(map(str, sorted(s))) or 'none'}" for f, s in steps.items())
        raise UsageError(f"the training runs share no evaluated step ({lists}); give --step N")
    return max(common)


def load_seed(folder: Path, step: int | None) -> SeedRun:
    """The evaluation runs of one seed: a run folder, a folder of them, or a training run at ``step``."""
    if not is_training_run(folder):
        return SeedRun(folder, find_runs(folder))
    assert step is not None  # shared_step gives one whenever a training run is among the folders
    runs = []
    for suite, run_dir in sorted(training_evals(folder).get(step, {}).items()):
        if not is_run_folder(run_dir):
            raise UsageError(
                f"{folder}: its step-{step} evaluation of {suite} is not at {run_dir} (curve.jsonl's run_dir); "
                "was the evaluation folder moved or deleted?"
            )
        runs.append(load_run(run_dir, label=folder.name))
    return SeedRun(folder, runs, step)


def load_sides(named: Sequence[tuple[str, Sequence[Path]]], *, step: int | None = None) -> list[Side]:
    """Each (label, folders) as a side, every training run among them measured at one shared step."""
    expanded = [(label, expand(paths, label)) for label, paths in named]
    at = shared_step([f for _, folders in expanded for f in folders], step)
    return [Side(label, [load_seed(f, at) for f in folders]) for label, folders in expanded]
