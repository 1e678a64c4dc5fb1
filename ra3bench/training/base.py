"""The trainer contract: what a mid-training method implements, and what ra3bench gives it.

A trainer is a class with a ``name``, a ``Config`` dataclass (its own knobs, the ``trainer:``
section of the YAML) and ``train(ctx)``. It is registered with ``@TRAINERS.register("name")``
in-tree, through the ``ra3bench.trainers`` entry-point group by a plugin package, or named as
``package.module:Class`` on the command line. It uses only what :class:`TrainContext` offers:

* ``ctx.model`` / ``ctx.tokenizer``: loaded from ``model.name`` (a preset, a folder, a Hub id or
  ``tiny-random``), with LoRA adapters when ``model.lora`` is set;
* ``ctx.examples``: the training data (:class:`TrainingExample`), from ``data.source``;
* ``ctx.log(step, **metrics)``: one line of ``curve.jsonl`` (loss, learning rate, anything);
* ``ctx.evaluate(step, tokens_seen)``: the configured schedule's evaluation, when due (step 0,
  every ``eval.every`` steps, and the last step), through the same pipeline and sandbox as
  `ra3bench run`, on the in-memory model; its time is logged apart from training time;
* ``ctx.save_checkpoint(step, state)`` / ``ctx.resume_state()``: model + trainer state
  (optimizer, scheduler, RNG, data position) so that ``--resume`` continues the same run.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from ra3bench.backends.vllm_colocated import ColocatedSettings
from ra3bench.registry import Registry
from ra3bench.spec import EvalOptions, EvalSpec
from ra3bench.training.tracking import install_hint, missing_packages

if TYPE_CHECKING:
    from ra3bench.training.context import TrainContext


@dataclass
class TrainingExample:
    """One training trace: ``prompt`` (context, no loss) then ``code`` (the expert's tokens)."""

    prompt: str
    code: str
    source_id: str = ""  # e.g. "Mbpp/601", a file path: for contamination checks and the manifest


@dataclass
class LoraConfig:
    r: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])


@dataclass
class ModelConfig:
    name: str = "tiny-random"  # preset | local folder | .gguf | Hub id | tiny-random
    dtype: str = "auto"  # auto (float32 on CPU) | float32 | bfloat16
    device: str = "cpu"
    lora: LoraConfig | None = None


@dataclass
class DataConfig:
    source: str = "mbpp-train"  # mbpp-train | jsonl | py-folder
    path: str = ""  # jsonl: the file; py-folder: the folder ("stdlib": this Python's standard library)
    max_examples: int = 0  # 0: all
    max_length: int = 512  # tokens per training sequence (prompt + code), longer ones are cut
    shuffle_seed: int = 0


@dataclass(kw_only=True)
class EvalConfig(EvalOptions):
    """The ``eval:`` block: every :class:`~ra3bench.spec.EvalOptions` setting (the same names, defaults
    and checks as `ra3bench run`'s flags: time_factor, memory_mb, sandbox, ...) plus the schedule.
    The training run's one sandbox (``sandbox``, ``workers``) judges its evaluations and its rewards."""

    suites: list[str] = field(default_factory=lambda: ["mbpp+"])  # names, or name@version
    every: int = 50  # evaluate every N optimizer steps (and at step 0 and at the end); 0: only 0 and end
    at_start: bool = True  # False: skip step 0 (the init was measured elsewhere, e.g. by the run it came from)
    # an evals/step-N folder of another run that measured this run's starting weights with these same
    # settings: its results are step 0's point (checked to match), not measured again
    start_from: str = ""
    # per suite, the filters `ra3bench run` takes, e.g. {livecodebench: {start_date: "2024-08-01"}}: a
    # window after an RL training cut-off; applied before `limit`
    select: dict[str, dict[str, str]] = field(default_factory=dict)
    exclude_training_tasks: bool = True  # drop eval problems whose task id is in the training data
    # a curve's defaults differ from a one-off run's: a fixed subset, sampled, pass@1 of 4 samples
    limit: int = 50  # the first N problems of each suite (a fixed subset), 0: all
    n: int = 4
    k: list[int] = field(default_factory=lambda: [1])
    temperature: float = 0.8
    top_p: float = 0.95
    max_new_tokens: int = 384

    def spec_for(self, suite: str) -> EvalSpec:
        """The :class:`EvalSpec` of one suite's evaluation (``suite`` as ``eval.suites`` names it: ``name@version`` pins
        a data version)."""
        name, _, version = suite.partition("@")
        return EvalSpec(
            suite=name, suite_version=version or None, select=dict(self.select.get(suite, {})), **self.options()
        )


@dataclass
class GenerationConfig:
    """The ``generation:`` block: what samples a run's evaluation points and a trainer's rollouts.

    ``hf``: the in-memory model, through the hf backend's continuous batching. ``vllm``: a colocated
    vLLM engine that gets the current weights before each use (``vllm``: where and how it runs;
    docs/generation.md)."""

    engine: Literal["hf", "vllm"] = "hf"
    vllm: ColocatedSettings = field(default_factory=ColocatedSettings)


@dataclass
class RunConfig:
    out: str = ""  # run folder; "": results/train-<trainer>-<time>
    seed: int = 0
    log_every: int = 1
    save_every: int = 0  # checkpoint every N steps (0: only at the end)
    tensorboard: bool = False  # the same as listing tensorboard in report_to
    # trackers that also get the curve, as TRL's report_to (training/tracking.py); curve.jsonl stays the record
    report_to: list[Literal["wandb", "mlflow", "tensorboard"]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if missing := missing_packages(self.trackers()):  # found with the config, before anything loads
            raise ValueError(install_hint(missing))

    def trackers(self) -> list[str]:
        """``report_to``, with ``tensorboard`` when ``tensorboard`` is true; each once."""
        return list(dict.fromkeys([*self.report_to, *(["tensorboard"] if self.tensorboard else [])]))


class Trainer(abc.ABC):
    """A mid-training method. Subclasses set ``name``, ``Config`` and implement :meth:`train`."""

    name: ClassVar[str] = "?"
    Config: ClassVar[type] = object  # a dataclass of the trainer's own knobs
    curve_metric: ClassVar[str] = "loss"  # the training metric drawn under pass@k in curves.png

    def __init__(self, config: Any) -> None:
        self.config = config

    @abc.abstractmethod
    def train(self, ctx: TrainContext) -> None:
        """Run the method; call ``ctx.evaluate`` after each optimizer step and ``ctx.log``."""


TRAINERS: Registry[type[Trainer]] = Registry("trainer", group="ra3bench.trainers")
