"""``ra3bench train --each KEY=LABEL:VALUE,...``: one training per value, curves side by side.

The case it is for: RLVR from each initialization (base, NTP, RA3) with the same budget, so
that one command produces comparable runs and one plot. ``--each`` may be given several times
with the same labels: an arm then sets every key its label names (e.g. ``trainer.init`` and the
``eval.start_from`` that measured that init). Every config is checked before the
first run trains; the runs go to ``<run.out>/<LABEL>``; with ``--resume`` a finished run is
kept, a stopped one continues from its checkpoint and a missing one starts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ra3bench.config import ConfigError
from ra3bench.errors import UsageError

LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
COMBINED = "curves.png"


@dataclass(frozen=True)
class Arm:
    label: str
    overrides: tuple[str, ...]  # KEY=VALUE, one per --each


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


@dataclass(frozen=True)
class SweepPlan:
    trainer_cls: Any
    base: Any  # the config without any arm's override
    parent: Path
    runs: list[tuple[Arm, list[str], Path]]  # each arm, its overrides, its run folder


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
    errors: list[str] = []
    for arm in arms:
        out = parent / arm.label
        arm_overrides = [*overrides, *arm.overrides, f"run.out={out}"]
        try:
            _, config = load_train_config(trainer_spec, config_path, arm_overrides)
            if not (resume and (out / "config.yaml").exists()):  # a started arm already passed this check
                errors.extend(f"[{arm.label}] {e}" for e in start_from_errors(config, data_dir))
        except ConfigError as exc:
            errors.extend(f"[{arm.label}] {e}" for e in exc.errors)
        if not resume and (out / "curve.jsonl").exists():
            errors.append(f"[{arm.label}] {out} already holds a training run; add --resume to continue the sweep")
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
    from ra3bench.training.curves import plot_curves, read_curve
    from ra3bench.training.runner import train

    plan = plan_each(trainer_spec, config_path, overrides, arms, resume=resume, data_dir=data_dir)
    steps = int(getattr(plan.base.trainer, "steps", 0))
    for arm, arm_overrides, out in plan.runs:
        if resume and finished(out, steps):
            print(f"[{arm.label}] {out}: finished, kept")
            continue
        print(f"[{arm.label}] {' '.join(arm.overrides)} -> {out}")
        started = resume and (out / "config.yaml").exists()
        train(trainer_spec, config_path, arm_overrides, resume=started, data_dir=data_dir)
    metric = getattr(plan.trainer_cls, "curve_metric", "loss")
    curves = {arm.label: read_curve(out) for arm, _, out in plan.runs}
    title = f"{plan.trainer_cls.name}: {arms[0].overrides[0].split('=')[0]}"
    plot_curves(curves, plan.parent / COMBINED, title=title, train_metric=metric)
    return plan.parent


def finished(run_dir: Path, steps: int) -> bool:
    """The run evaluated its last step (the schedule always does), so nothing of it is left to do."""
    from ra3bench.training.curves import read_curve

    if not (run_dir / "curve.jsonl").exists():
        return False
    return any(p.get("kind") == "eval" and p.get("step") == steps for p in read_curve(run_dir))
