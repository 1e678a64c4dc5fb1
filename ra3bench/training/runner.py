"""`ra3bench train`: resolve the trainer, check the whole config, then load and train.

Every config error (unknown key, wrong type, unknown trainer, suite or data source) is found
before anything heavy starts and reported together, one line each (exit 2).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib
import importlib.util
from pathlib import Path
from typing import Any

from ra3bench.config import ConfigError, load_config, save_config
from ra3bench.errors import UsageError
from ra3bench.training.base import (
    TRAINERS,
    DataConfig,
    EvalConfig,
    GenerationConfig,
    ModelConfig,
    RunConfig,
    Trainer,
)

DATA_SOURCES = ("mbpp-train", "jsonl", "py-folder")


def resolve_trainer(spec: str) -> type[Trainer]:
    """A registered name, or ``package.module:Class`` (no registration needed)."""
    if ":" in spec:
        module_name, _, attr = spec.partition(":")
        try:
            cls = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise UsageError(f"trainer {spec!r} cannot be imported ({type(exc).__name__}: {exc})") from None
    else:
        cls = TRAINERS.get(spec)
    if not (isinstance(cls, type) and issubclass(cls, Trainer)):
        raise UsageError(f"trainer {spec!r} is not a ra3bench.training.Trainer subclass")
    if not dataclasses.is_dataclass(cls.Config):
        raise UsageError(f"trainer {spec!r}: its Config must be a dataclass")
    return cls


def config_schema(trainer_config: type | None) -> type:
    """The whole config: the core's sections plus the trainer's own (``trainer:``)."""
    fields: list[Any] = [
        ("model", ModelConfig, dataclasses.field(default_factory=ModelConfig)),
        ("data", DataConfig, dataclasses.field(default_factory=DataConfig)),
        ("eval", EvalConfig, dataclasses.field(default_factory=EvalConfig)),
        ("generation", GenerationConfig, dataclasses.field(default_factory=GenerationConfig)),
        ("run", RunConfig, dataclasses.field(default_factory=RunConfig)),
    ]
    if trainer_config is not None:
        fields.append(("trainer", trainer_config, dataclasses.field(default_factory=trainer_config)))
    return dataclasses.make_dataclass("TrainConfig", fields)


def load_train_config(trainer_spec: str, config_path: Path | None, overrides: list[str]) -> tuple[type[Trainer], Any]:
    errors: list[str] = []
    trainer_cls: type[Trainer] | None = None
    try:
        trainer_cls = resolve_trainer(trainer_spec)
    except UsageError as exc:
        errors.append(str(exc))
    data = _read_yaml(config_path) if config_path else {}
    if trainer_cls is None:  # still check every other section
        data = {k: v for k, v in data.items() if k != "trainer"}
        overrides = [o for o in overrides if not o.startswith("trainer.")]
    config = None
    try:
        config = load_config(config_schema(trainer_cls.Config if trainer_cls else None), None, overrides, data=data)
    except ConfigError as exc:
        errors.extend(exc.errors)
    if config is not None:
        errors.extend(semantic_errors(config))
    else:  # the names can still be checked where the file or an override gives them
        suites = _raw(data, overrides, "eval.suites")
        errors.extend(name_errors(suites, _raw(data, overrides, "data.source")))
        if isinstance(suites, list):
            errors.extend(select_errors(_raw_select_keys(data, overrides), suites))
    if errors:
        raise ConfigError(errors)
    assert trainer_cls is not None
    return trainer_cls, config


def semantic_errors(config: Any) -> list[str]:
    """What a type check cannot see: names that must exist, paths a source needs."""
    errors = name_errors(config.eval.suites, config.data.source)
    if config.data.source in ("jsonl", "py-folder") and not config.data.path:
        errors.append(f"data.path: the {config.data.source} source needs a path")
    if config.eval.n < 1 or any(k < 1 or k > config.eval.n for k in config.eval.k):
        errors.append(f"eval.k: every k must be between 1 and eval.n ({config.eval.n})")
    if config.eval.start_from and not Path(config.eval.start_from).is_dir():
        errors.append(
            f"eval.start_from: no folder {config.eval.start_from} (give an evals/step-N folder of a finished run)"
        )
    elif config.eval.start_from:
        errors.extend(start_weights_errors(config))
    return errors + select_errors(set(config.eval.select), config.eval.suites) + generation_errors(config.generation)


def generation_errors(config: GenerationConfig) -> list[str]:
    """``generation.engine: vllm`` needs vLLM: in this environment, or at ``generation.vllm.python``."""
    if config.engine != "vllm":
        return []
    if not config.vllm.python and importlib.util.find_spec("vllm") is None:
        return [
            'generation.engine vllm: vLLM is not installed here; pip install "ra3bench[vllm]", or set '
            "generation.vllm.python to the python of a venv that has it (docs/backends_vllm.md)"
        ]
    return config.vllm.errors()


def start_weights_errors(config: Any) -> list[str]:
    """``eval.start_from`` must have measured the weights this run starts from: with
    ``trainer.init``, that checkpoint's own run at that step; without, the untrained
    ``model.name`` (a run's step 0 that had no init of its own)."""
    import re

    import yaml

    folder = Path(config.eval.start_from)
    run, match = folder.resolve().parent.parent, re.fullmatch(r"step-(\d+)", folder.resolve().name)
    if not match or folder.resolve().parent.name != "evals" or not (run / "config.yaml").is_file():
        return [f"eval.start_from: {folder} is not the evals/step-N folder of a training run"]
    step = int(match.group(1))
    source = yaml.safe_load((run / "config.yaml").read_text()) or {}
    source_init = (source.get("trainer") or {}).get("init") or ""
    init = getattr(config.trainer, "init", "") or ""
    if init:
        measured = run / "checkpoints" / f"step-{step:06d}"
        if Path(init).resolve() != measured.resolve():
            return [
                f"eval.start_from: {folder} measured {run.name} at step {step}, but this run starts from "
                f"trainer.init {init}; give the evals/step-N folder of that checkpoint's run"
            ]
    elif step != 0 or source_init or (source.get("model") or {}).get("name") != config.model.name:
        return [
            f"eval.start_from: {folder} measured {run.name} at step {step}, not the untrained {config.model.name} "
            "this run starts from; give a step-000000 folder of a run of the same model.name without an init"
        ]
    return []


def select_errors(selected: set[str], suites: list) -> list[str]:
    """``eval.select`` filters for a suite that is not evaluated: a typo or a forgotten suite."""
    return [
        f"eval.select.{name}: {name!r} is not in eval.suites; add it there or drop its filters"
        for name in sorted(selected - set(suites))
    ]


def _raw_select_keys(data: dict, overrides: list[str]) -> set[str]:
    section = (data.get("eval") or {}).get("select") if isinstance(data.get("eval"), dict) else None
    keys = {str(k) for k in section} if isinstance(section, dict) else set()
    for override in overrides:
        parts = override.partition("=")[0].strip().split(".")
        if len(parts) > 2 and parts[:2] == ["eval", "select"]:
            keys.add(parts[2])
    return keys


def name_errors(suites: Any, source: Any) -> list[str]:
    """Unknown suite names and data sources (whatever of them is a well-typed value)."""
    from ra3bench.suites import SUITES

    errors = []
    known = SUITES.names()
    for name in suites if isinstance(suites, list) else []:
        if isinstance(name, str) and name not in known:
            errors.append(f"eval.suites: unknown suite {name!r}; known: {', '.join(known)}")
    if isinstance(source, str) and source not in DATA_SOURCES:
        errors.append(f"data.source: unknown source {source!r}; known: {', '.join(DATA_SOURCES)}")
    return errors


def _raw(data: dict, overrides: list[str], dotted: str) -> Any:
    """The value the file or the last override gives ``dotted`` (None if neither does)."""
    import yaml

    value: Any = data
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    for override in overrides:
        key, sep, text = override.partition("=")
        if sep and key.strip() == dotted:
            try:
                value = yaml.safe_load(text)
            except yaml.YAMLError:
                value = text
            if dotted == "eval.suites" and isinstance(value, str):
                value = [v.strip() for v in value.split(",")]
    return value


def _read_yaml(path: Path) -> dict:
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except OSError as exc:
        raise ConfigError([f"config file {path}: {exc.strerror}"]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise ConfigError([f"config file {path} is not valid YAML{where}"]) from None
    if not isinstance(data, dict):
        raise ConfigError([f"config file {path}: the top level must be a mapping of sections"])
    return data


def train(
    trainer_spec: str,
    config_path: Path | None,
    overrides: list[str],
    *,
    resume: bool = False,
    data_dir: Path | None = None,
) -> Path:
    """Check the config, build the context, run the trainer; the run folder."""
    from ra3bench.training.context import TrainContext, base_manifest, load_training_model, seed_everything
    from ra3bench.training.data import data_record, load_examples

    trainer_cls, config = load_train_config(trainer_spec, config_path, overrides)
    run_dir = Path(config.run.out) if config.run.out else default_train_dir(trainer_cls.name)
    if resume and not (run_dir / "config.yaml").exists():
        raise UsageError(f"--resume: {run_dir} holds no training run; give its folder with run.out=DIR")
    if not resume and (run_dir / "curve.jsonl").exists():
        raise UsageError(f"{run_dir} already holds a training run; add --resume to continue it, or pick run.out")
    examples = load_examples(config.data, data_dir)
    steps = int(getattr(config.trainer, "steps", 0))
    # the schedule loads its suites (and reports their errors) before a model loads
    schedule = eval_schedule(config, examples, data_dir)
    if not resume and (errors := schedule.start_errors()):
        raise ConfigError(errors)
    seed_everything(config.run.seed)
    model, tokenizer, model_record = load_training_model(config.model, config.run.seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(config, run_dir / "config.yaml")
    name = trainer_spec if ":" in trainer_spec else trainer_cls.name
    manifest = base_manifest(name, _plain(config), model_record, data_record(config.data, examples, data_dir), schedule)
    ctx = TrainContext(
        config=config,
        trainer_name=name,
        run_dir=run_dir,
        model=model,
        tokenizer=tokenizer,
        examples=examples,
        schedule=schedule,
        manifest=manifest,
        resume=resume,
        curve_metric=getattr(trainer_cls, "curve_metric", "loss"),
    )
    try:
        trainer_cls(config.trainer).train(ctx)
        ctx.evaluate(steps, force=False)  # the end point, if the trainer did not ask for it
    finally:
        ctx.close()
    return run_dir


def start_from_errors(config: Any, data_dir: Path | None = None) -> list[str]:
    """``eval.start_from`` checked against the evaluation this config would run (loads the data)."""
    if not config.eval.start_from:
        return []
    from ra3bench.training.data import load_examples

    return eval_schedule(config, load_examples(config.data, data_dir), data_dir).start_errors()


def eval_schedule(config: Any, examples: list, data_dir: Path | None = None) -> Any:
    """The run's evaluation schedule: the same one for the config check and for the run itself."""
    from ra3bench.training.data import training_task_ids
    from ra3bench.training.evaluation import EvalSchedule

    steps = int(getattr(config.trainer, "steps", 0))
    return EvalSchedule(config.eval, steps, training_task_ids(examples), data_dir)


def default_train_dir(trainer: str) -> Path:
    return Path("results") / f"train-{trainer}-{dt.datetime.now():%Y%m%d-%H%M%S}"


def _plain(config: Any) -> dict:
    from ra3bench.config import config_to_dict

    return config_to_dict(config)
