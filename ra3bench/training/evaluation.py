"""The evaluation schedule of a training run: one :class:`~ra3bench.Session` per suite, as `ra3bench run`.

Each evaluation generates with the in-memory model (the ``hf`` backend given the model and
tokenizer objects), judges in the run's one sandbox (kept warm for the whole run and shared
with the trainer's rewards, :meth:`EvalSchedule.sandbox`), and writes an ordinary run folder
(``evals/step-000050/mbppplus/``, with its manifest), so every point of the curve traces back
to its samples, verdicts, data hashes and limits. The verdict cache is on (``eval.cache``): a
program the model writes again is not run again.

The problems are fixed for the whole run (the first ``limit`` of each suite, after dropping
the suite's problems whose task id is in the training data, when ``exclude_training_tasks``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ra3bench.errors import UsageError
from ra3bench.evaluate import Session, open_sandbox, selection_record
from ra3bench.sandbox.base import Sandbox
from ra3bench.suites import get_suite
from ra3bench.suites.base import Problem, Suite
from ra3bench.summary import Summary
from ra3bench.training.base import EvalConfig
from ra3bench.training.generation import TrainingGeneration


@dataclass
class SuitePlan:
    key: str  # as eval.suites names it ("mbpp+", "livecodebench@v6-public")
    suite: Suite
    problems: list[Problem]
    excluded: list[str]  # task ids dropped because the training data holds them
    session: Session | None = None


def suite_dir(suite: Suite) -> str:
    """The folder of a suite's evaluation inside ``evals/step-N/`` (``mbpp+`` -> ``mbppplus``)."""
    return suite.name.replace("+", "plus")


class EvalSchedule:
    """When to evaluate, on what, and the evaluation itself."""

    def __init__(
        self, config: EvalConfig, total_steps: int, training_ids: set[str], data_dir: Path | None = None
    ) -> None:
        self.config = config
        self.total_steps = total_steps
        self.settings = config.judge_settings()
        self.plans: list[SuitePlan] = []
        unknown = sorted(set(config.select) - set(config.suites))
        if unknown:
            raise UsageError(f"eval.select names {', '.join(unknown)}, which eval.suites does not evaluate")
        for name in config.suites:
            suite = get_suite(name, None, data_dir)
            problems = suite.selected(**config.select.get(name, {}))
            excluded = [p.task_id for p in problems if p.task_id in training_ids]
            if config.exclude_training_tasks:
                problems = [p for p in problems if p.task_id not in training_ids]
            if config.limit:
                problems = problems[: config.limit]
            self.plans.append(SuitePlan(name, suite, problems, excluded if config.exclude_training_tasks else []))
        self._sandbox: Sandbox | None = None

    def due(self, step: int) -> bool:
        """Step 0 (unless ``at_start`` is off), every ``every`` steps, and the last step."""
        every = self.config.every
        if step == 0 and not self.config.at_start and not self.config.start_from:
            return self.total_steps == 0
        return step == 0 or step == self.total_steps or (every > 0 and step % every == 0)

    def _borrowed(self, plan: SuitePlan) -> tuple[Path, dict, dict] | None:
        """``start_from``'s evaluation of one suite: its folder, manifest and summary (None if unfinished)."""
        folder = Path(self.config.start_from) / suite_dir(plan.suite)
        try:
            manifest = json.loads((folder / "manifest.json").read_text())
            summary = json.loads((folder / "summary.json").read_text())
        except (OSError, ValueError):
            return None
        return folder, manifest, summary

    def start_errors(self) -> list[str]:
        """Why ``start_from`` cannot stand for this run's step 0; empty when it can.

        The borrowed point must be the same measurement this run would make: the same data
        file, the same problems, the same n, k and sampling settings. That it measured the same
        weights is checked with the config (``runner.start_weights_errors``); the manifest
        records which evaluation stood in, and the curve's ``run_dir`` points at it.
        """
        if not self.config.start_from:
            return []
        cfg, where = self.config, f"eval.start_from {self.config.start_from}"
        errors = []
        for plan in self.plans:
            borrowed = self._borrowed(plan)
            if borrowed is None:
                folder = Path(cfg.start_from) / suite_dir(plan.suite)
                errors.append(f"{where}: no finished {plan.suite.name} evaluation in {folder} (summary.json)")
                continue
            _, manifest, summary = borrowed
            generation = manifest.get("model", {}).get("generation", {})
            wanted = {
                "data file sha256": (manifest.get("suite", {}).get("data_sha256"), plan.suite.data_sha256),
                "problems (tasks_sha256)": (
                    manifest.get("selection", {}).get("tasks_sha256"),
                    selection_record({}, plan.problems)["tasks_sha256"],
                ),
                "n": (manifest.get("n"), cfg.n),
                "temperature": (generation.get("temperature"), cfg.temperature),
                "top_p": (generation.get("top_p"), cfg.top_p),
                "max_new_tokens": (generation.get("max_new_tokens"), cfg.max_new_tokens),
                "seed": (generation.get("seed"), cfg.seed),
            }
            if cfg.prompt_style != "auto":
                wanted["prompt_style"] = (manifest.get("model", {}).get("prompt_style"), cfg.prompt_style)
            for what, (theirs, ours) in wanted.items():
                if theirs != ours:
                    errors.append(f"{where}: its {plan.suite.name} {what} is {theirs!r}, this run's is {ours!r}")
            missing = [
                f"pass@{k} {group}"
                for group, values in summary.get("pass_at_k", {}).items()
                for k in cfg.k
                if str(k) not in values
            ]
            if missing:
                errors.append(f"{where}: its {plan.suite.name} summary has no {', '.join(missing)}")
        return errors

    def start_point(self) -> list[Summary]:
        """The summaries of ``start_from``, in the shape :meth:`run` returns (no time spent here)."""
        errors = self.start_errors()
        if errors:
            raise UsageError("; ".join(errors))
        summaries = []
        for plan in self.plans:
            borrowed = self._borrowed(plan)
            assert borrowed is not None  # start_errors found every suite's evaluation finished
            folder, _, summary = borrowed
            summaries.append(Summary.from_json(summary, run_dir=str(folder), eval_time_s=0.0))
        return summaries

    def filters(self, suite: str) -> dict:
        """How a suite's problems were chosen, for its manifests: the suite's ``select`` filters, then ``limit``."""
        return {**self.config.select.get(suite, {}), "limit": self.config.limit}

    def describe(self) -> dict:
        return {
            "config": {**self.config.__dict__},
            "suites": {
                plan.suite.name: {
                    **selection_record(self.filters(plan.key), plan.problems),
                    "excluded_training_tasks": plan.excluded,
                }
                for plan in self.plans
            },
            "settings": self.settings.describe(),
        } | ({"start_from": self._start_record()} if self.config.start_from else {})

    def _start_record(self) -> dict:
        """Which evaluation stood in for step 0: its folder, run id, model label and command."""
        record = {}
        for plan in self.plans:
            _, manifest, _ = self._borrowed(plan) or (None, {}, {})
            record[plan.suite.name] = {
                "run_dir": str(Path(self.config.start_from) / suite_dir(plan.suite)),
                "run_id": manifest.get("run_id"),
                "model": manifest.get("model", {}).get("model"),
                "command": manifest.get("command"),
            }
        return record

    def sandbox(self) -> Sandbox:
        """The run's one sandbox, started on first use: evaluations and a trainer's rewards share it."""
        if self._sandbox is None:
            self._sandbox = open_sandbox(self.config.sandbox, self.config.workers, self.config.ray_address)
        return self._sandbox

    def open(self) -> None:
        """Start the sandbox and compute every suite's expected outputs up front."""
        for plan in self.plans:
            if plan.session is None:
                spec = self.config.spec_for(plan.key)
                plan.session = Session(spec, suite=plan.suite, problems=plan.problems, sandbox=self.sandbox())
            plan.session.prepare()

    def close(self) -> None:
        for plan in self.plans:
            if plan.session is not None:
                plan.session.close()
            plan.session = None
        if self._sandbox is not None:
            self._sandbox.close()
        self._sandbox = None

    def run(
        self, model: Any, tokenizer: Any, folder: Path, label: str, generation: TrainingGeneration | None = None
    ) -> list[Summary]:
        """Evaluate the model on every suite; one summary per suite (with ``run_dir`` and timing).
        ``generation``: the run's engine, already holding the model's weights (None: the hf backend)."""
        self.open()
        summaries = []
        for plan in self.plans:
            assert plan.session is not None
            name = plan.key
            backend = generation.eval_backend(model, tokenizer, plan.session.spec, label) if generation else None
            summaries.append(
                plan.session.evaluate(
                    backend or model,
                    folder / suite_dir(plan.suite),
                    tokenizer=tokenizer,
                    label=label,
                    manifest={
                        "selection": selection_record(self.filters(name), plan.problems),
                        "training_checkpoint": label,
                    },
                )
            )
        return summaries
