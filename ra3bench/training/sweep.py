"""``ra3bench train --each KEY=LABEL:VALUE,... --seeds 0,1,2``: one training per value and seed.

The case ``--each`` is for: RLVR from each initialization (base, NTP, RA3) with the same budget,
so that one command produces comparable runs and one plot. ``--each`` may be given several times
with the same labels: an arm then sets every key its label names (e.g. ``trainer.init`` and the
``eval.start_from`` that measured that init).

``--seeds`` repeats every arm once per training seed, because one run of a method is one draw of
its training randomness (data order, initialisation, sampled rollouts) and a method comparison
needs several. A seed sets ``run.seed`` (the data order, the model's random init, the trainer's
sampling) and, when the trainer's ``Config`` has a ``seed`` field of its own (RA3's E-step),
``trainer.seed`` to the same value; the evaluation's sampling seed (``eval.seed``) stays as
configured, so every run is measured the same way. The runs go to ``<run.out>/seed-<S>``
(with ``--each``: ``<run.out>/<LABEL>/seed-<S>``), seed by seed (seed 0 of every arm first, so a
sweep stopped half way holds comparable arms).

Every config is checked before the first run trains; with ``--resume`` a finished run is kept, a
stopped one continues from its checkpoint and a missing one starts. The combined
``<run.out>/curves.png`` draws each arm once: a single run as it is (its 95% interval over
problems shaded), several seeds as their mean with the min-max over seeds shaded.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ra3bench.config import ConfigError
from ra3bench.errors import UsageError

LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
COMBINED = "curves.png"


SEED_FOLDER = "seed-{}"


@dataclass(frozen=True)
class Arm:
    """One training run of a sweep: an ``--each`` label's overrides, and with ``--seeds`` its seed."""

    label: str  # the --each label ("" without --each): the method's name in the combined plot
    overrides: tuple[str, ...]  # KEY=VALUE, one per --each
    seed: int | None = None  # --seeds: this run's training seed

    @property
    def folder(self) -> str:
        """Where the run goes under ``run.out``: ``LABEL``, ``seed-S`` or ``LABEL/seed-S``."""
        parts = [self.label] if self.label else []
        return "/".join([*parts, SEED_FOLDER.format(self.seed)] if self.seed is not None else parts)


def parse_each(text: str) -> list[Arm]:
    """``trainer.init=base:,ntp:results/ntp/checkpoints/step-000048`` -> one arm per label."""
    key, sep, values = text.partition("=")
    key = key.strip()
    if not sep or not key or not values.strip():
        raise UsageError(f"--each {text!r}: expected KEY=LABEL:VALUE,LABEL:VALUE (e.g. trainer.init=base:,ntp:DIR)")
    arms: list[Arm] = []
    for item in values.split(","):
        label, colon, value = item.partition(":")
        label = label.strip()
        if not colon or not LABEL.match(label):
            raise UsageError(
                f"--each {key}: {item.strip()!r} is not LABEL:VALUE (a label of letters, digits, '_', '.', '-')"
            )
        if label in {a.label for a in arms}:
            raise UsageError(f"--each {key}: the label {label!r} appears twice")
        arms.append(Arm(label, (f"{key}={value.strip()}",)))
    if len(arms) < 2:
        raise UsageError(f"--each {key}: give at least two LABEL:VALUE items; one run needs no --each")
    return arms


def zip_each(texts: list[str]) -> list[Arm]:
    """Several ``--each`` options, one arm per label setting every key (the labels must agree)."""
    parsed = [parse_each(text) for text in texts]
    labels = [arm.label for arm in parsed[0]]
    for text, arms in zip(texts[1:], parsed[1:], strict=True):
        if sorted(a.label for a in arms) != sorted(labels):
            raise UsageError(
                f"--each {text.partition('=')[0]}: labels {', '.join(a.label for a in arms)} differ from the "
                f"first --each's ({', '.join(labels)}); every --each names the same labels"
            )
    by_label = {arm.label: list(arm.overrides) for arm in parsed[0]}
    for arms in parsed[1:]:
        for arm in arms:
            by_label[arm.label].extend(arm.overrides)
    return [Arm(label, tuple(by_label[label])) for label in labels]


def parse_seeds(text: str) -> list[int]:
    """``0,1,2`` or ``0-4`` (or both: ``0-2,7``) -> the seeds, in order; each once, none negative."""
    seeds: list[int] = []
    for item in text.split(","):
        first, dash, last = item.strip().partition("-")
        try:
            values = range(int(first), int(last) + 1) if dash else [int(first)]
        except ValueError:
            values = []
        if not values or (dash and int(last) < int(first)):
            raise UsageError(f"--seeds {text!r}: {item.strip()!r} is not a seed or a range (e.g. --seeds 0,1,2 or 0-4)")
        for seed in values:
            if seed in seeds:
                raise UsageError(f"--seeds {text!r}: seed {seed} appears twice")
            seeds.append(seed)
    return seeds


def with_seeds(arms: list[Arm], seeds: list[int]) -> list[Arm]:
    """Every arm once per seed, seed by seed (seed 0 of every arm first)."""
    return [Arm(arm.label, arm.overrides, seed) for seed in seeds for arm in arms]


def seed_overrides(trainer_cls: Any, seed: int | None) -> list[str]:
    """What a seed sets: ``run.seed``, and ``trainer.seed`` where the trainer's Config has one."""
    if seed is None:
        return []
    fields = getattr(trainer_cls.Config, "__dataclass_fields__", {})
    return [f"run.seed={seed}"] + ([f"trainer.seed={seed}"] if "seed" in fields else [])


def seed_clashes(trainer_cls: Any, overrides: list[str], arms: list[Arm]) -> list[str]:
    """A seed set by hand as well as by ``--seeds``: which would win is a guess, so it is refused."""
    if all(arm.seed is None for arm in arms):
        return []
    keys = [o.partition("=")[0] for o in seed_overrides(trainer_cls, 0)]

    def clashes(given: Sequence[str], where: str) -> list[str]:
        by_hand = {o.partition("=")[0].strip() for o in given}
        return [f"{where}{key} is set by --seeds; drop the {key}=... override" for key in keys if key in by_hand]

    errors = clashes(overrides, "")
    for label in dict.fromkeys(arm.label for arm in arms):
        errors += clashes(next(a.overrides for a in arms if a.label == label), f"--each [{label}]: ")
    return errors


@dataclass(frozen=True)
class SweepPlan:
    trainer_cls: Any
    base: Any  # the config without any arm's override
    parent: Path
    runs: list[tuple[Arm, list[str], Path]]  # each arm, its overrides, its run folder

    def by_label(self) -> dict[str, list[Path]]:
        """Each arm's run folders (one per seed), in the order the arms were given."""
        out: dict[str, list[Path]] = {}
        for arm, _, folder in self.runs:
            out.setdefault(arm.label, []).append(folder)
        return out


def plan_each(
    trainer_spec: str,
    config_path: Path | None,
    overrides: list[str],
    arms: list[Arm],
    *,
    resume: bool = False,
    data_dir: Path | None = None,
) -> SweepPlan:
    """Every arm's config checked (all errors at once, each named by its label), and where each run goes."""
    from ra3bench.training.runner import default_train_dir, load_train_config, start_from_errors

    trainer_cls, base = load_train_config(trainer_spec, config_path, overrides)
    parent = Path(base.run.out) if base.run.out else default_train_dir(trainer_cls.name)
    runs: list[tuple[Arm, list[str], Path]] = []
    errors: list[str] = seed_clashes(trainer_cls, overrides, arms)
    for arm in arms:
        out = parent / arm.folder
        seeded = seed_overrides(trainer_cls, arm.seed)
        arm_overrides = [*overrides, *arm.overrides, *seeded, f"run.out={out}"]
        try:
            _, config = load_train_config(trainer_spec, config_path, arm_overrides)
            if not (resume and (out / "config.yaml").exists()):  # a started arm already passed this check
                errors.extend(f"[{arm.folder}] {e}" for e in start_from_errors(config, data_dir))
        except ConfigError as exc:
            errors.extend(f"[{arm.folder}] {e}" for e in exc.errors)
        if not resume and (out / "curve.jsonl").exists():
            errors.append(f"[{arm.folder}] {out} already holds a training run; add --resume to continue the sweep")
        runs.append((arm, arm_overrides, out))
    if errors:
        raise ConfigError(errors)
    return SweepPlan(trainer_cls, base, parent, runs)


def train_each(
    trainer_spec: str,
    config_path: Path | None,
    overrides: list[str],
    arms: list[Arm],
    *,
    resume: bool = False,
    data_dir: Path | None = None,
) -> Path:
    """Check every arm's config, train the arms in order, draw them in one PNG; the parent folder."""
    from ra3bench.training.runner import train

    plan = plan_each(trainer_spec, config_path, overrides, arms, resume=resume, data_dir=data_dir)
    steps = int(getattr(plan.base.trainer, "steps", 0))
    for arm, arm_overrides, out in plan.runs:
        if resume and finished(out, steps):
            print(f"[{arm.folder}] {out}: finished, kept")
            continue
        print(f"[{arm.folder}] {' '.join(arm_overrides[len(overrides) : -1])} -> {out}")
        started = resume and (out / "config.yaml").exists()
        train(trainer_spec, config_path, arm_overrides, resume=started, data_dir=data_dir)
    plot_sweep(plan)
    return plan.parent


def plot_sweep(plan: SweepPlan) -> Path:
    """``<run.out>/curves.png``: every arm once, several seeds as their mean with the min-max band."""
    from ra3bench.training.curves import plot_curves, read_curve
    from ra3bench.training.seed_curves import seed_band, seed_label

    name = plan.trainer_cls.name
    curves = {}
    for label, folders in plan.by_label().items():
        runs = [read_curve(folder) for folder in folders]
        curves[seed_label(label or name, len(runs))] = seed_band(runs) if len(runs) > 1 else runs[0]
    first = plan.runs[0][0]
    what = [first.overrides[0].split("=")[0]] if first.overrides else []
    seeds = len({arm.seed for arm, _, _ in plan.runs})
    what += [f"{seeds} seeds"] if first.seed is not None else []
    metric = getattr(plan.trainer_cls, "curve_metric", "loss")
    return plot_curves(curves, plan.parent / COMBINED, title=f"{name}: {', '.join(what)}", train_metric=metric)


def finished(run_dir: Path, steps: int) -> bool:
    """The run evaluated its last step (the schedule always does), so nothing of it is left to do."""
    from ra3bench.training.curves import read_curve

    if not (run_dir / "curve.jsonl").exists():
        return False
    return any(p.get("kind") == "eval" and p.get("step") == steps for p in read_curve(run_dir))
