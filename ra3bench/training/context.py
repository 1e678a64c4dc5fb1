"""TrainContext: everything a trainer gets from ra3bench (see ``training/base.py``).

The run folder of `ra3bench train`::

    config.yaml        the resolved config (defaults < YAML < overrides), as the run used it
    manifest.json      trainer, model source, data record, eval plan, code and library versions, host
    curve.jsonl        one line per training log and per evaluation (suite, group, k, pass@k, CI)
    tracking.json      with run.report_to: the W&B / MLflow run ids a --resume continues
                       (wandb/, mlruns/, tensorboard/: the trackers' own files, where they default)
    curves.png         pass@k and loss against the step, redrawn after each evaluation
    evals/step-N/S/    an ordinary run folder per evaluation (samples, verdicts, summary, manifest)
    checkpoints/step-N/ model (or LoRA adapter) + tokenizer + trainer_state.pt; LATEST names the newest

Time: ``wall_time_s`` in the curve is training time only; each evaluation's time is logged
apart (``eval_time_s``), so a method is not charged for how often it was measured.
"""

from __future__ import annotations

import json
import random
import shutil
import time
from pathlib import Path
from typing import Any

from ra3bench.backends.base import GenerationParams
from ra3bench.backends.hf_batching import Row
from ra3bench.config import config_to_dict
from ra3bench.errors import UsageError
from ra3bench.evaluate import Session
from ra3bench.prompts import Prompt
from ra3bench.results import code_version, host_info, now_iso
from ra3bench.spec import EvalSpec
from ra3bench.suites.base import Problem, Suite
from ra3bench.summary import Summary
from ra3bench.training.base import GenerationConfig, ModelConfig, TrainingExample
from ra3bench.training.curves import CurveLog, plot_curves, read_curve
from ra3bench.training.evaluation import EvalSchedule
from ra3bench.training.generation import TrainingGeneration

CHECKPOINTS = "checkpoints"
LATEST = "LATEST"
STATE = "trainer_state.pt"


def load_training_model(config: ModelConfig, seed: int = 0) -> tuple[Any, Any, dict]:
    """(model, tokenizer, what the manifest records) for ``model.name``; LoRA when configured."""
    from ra3bench.tiny import TINY_SPEC, tiny_model

    if config.name == TINY_SPEC:
        model, tokenizer = tiny_model(seed=seed)
        record: dict = {"model": TINY_SPEC}
    else:
        from ra3bench.backends.hf import load_model
        from ra3bench.models import resolve_model

        source = resolve_model(config.name)
        model, tokenizer = load_model(source, device=config.device, dtype=config.dtype)
        record = source.describe()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if config.lora is not None:
        from peft import LoraConfig, get_peft_model

        lora = config.lora
        model = get_peft_model(
            model,
            LoraConfig(
                r=lora.r,
                lora_alpha=lora.alpha,
                lora_dropout=lora.dropout,
                target_modules=list(lora.target_modules),
                task_type="CAUSAL_LM",
            ),
        )
        record["lora"] = {"r": lora.r, "alpha": lora.alpha, "dropout": lora.dropout, "targets": lora.target_modules}
    model.to(config.device)
    return model, tokenizer, record


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class TrainContext:
    def __init__(
        self,
        *,
        config: Any,
        trainer_name: str,
        run_dir: Path,
        model: Any,
        tokenizer: Any,
        examples: list[TrainingExample],
        schedule: EvalSchedule,
        manifest: dict,
        resume: bool = False,
        curve_metric: str = "loss",
    ) -> None:
        self.config = config
        self.curve_metric = curve_metric
        self.trainer_name = trainer_name
        self.run_dir = run_dir
        self.model = model
        self.tokenizer = tokenizer
        self.examples = examples
        self.schedule = schedule
        self.resume = resume
        self.curve = CurveLog(run_dir, report_to=config.run.trackers())
        self._train_time_s = 0.0
        self._eval_time_s = 0.0
        self._clock = time.perf_counter()
        self._evaluated: set[int] = set()
        self._sessions: list[Session] = []
        generation = getattr(config, "generation", None) or GenerationConfig()
        self.generation = TrainingGeneration(generation, run_dir, seed=config.run.seed)
        self._manifest = _carried_over(run_dir / "manifest.json", manifest) if resume else manifest
        self._write_manifest()
        self.curve.log_run(config_to_dict(config), self._manifest)  # the trackers' params and run identity

    # -- time ----------------------------------------------------------------------------------

    def train_time_s(self) -> float:
        """Training time so far, evaluations excluded."""
        return self._train_time_s + (time.perf_counter() - self._clock)

    def _pause_clock(self) -> None:
        self._train_time_s += time.perf_counter() - self._clock

    def _resume_clock(self) -> None:
        self._clock = time.perf_counter()

    # -- logging -------------------------------------------------------------------------------

    def log(self, step: int, tokens_seen: int, **metrics: float) -> None:
        """One ``train`` line of the curve (loss, lr, trainer-specific metrics)."""
        if step % max(1, self.config.run.log_every) == 0 or step == self.total_steps:
            self.curve.log_train(step, tokens_seen, self.train_time_s(), **metrics)

    @property
    def total_steps(self) -> int:
        return self.schedule.total_steps

    # -- evaluation ----------------------------------------------------------------------------

    def evaluate(self, step: int, tokens_seen: int = 0, *, force: bool = False) -> list[Summary] | None:
        """Run the schedule's evaluation if ``step`` is due (or ``force``); None when not due."""
        if step in self._evaluated or not (force or self.schedule.due(step)):
            return None
        self._pause_clock()
        started = time.perf_counter()
        try:
            folder = self.run_dir / "evals" / f"step-{step:06d}"
            if step == 0 and self.schedule.config.start_from and not force:
                summaries = self.schedule.start_point()  # measured by another run on these weights
            else:
                label = f"{self.trainer_name}@step{step}"
                try:
                    self.generation.ready(self.model, self.tokenizer)
                    summaries = self.schedule.run(self.model, self.tokenizer, folder, label, self.generation)
                finally:
                    self.generation.release()
            eval_time = time.perf_counter() - started
            self._eval_time_s += eval_time
            for summary in summaries:
                self.curve.log_summary(step, tokens_seen, self._train_time_s, summary, relative_to=self.run_dir)
            self._evaluated.add(step)
            self.draw()
            return summaries
        finally:
            self._resume_clock()

    def sample_sequences(
        self,
        prompts: list[Prompt],
        n: int,
        params: GenerationParams,
        *,
        batch_size: int = 16,
        batching: str = "continuous",
    ) -> list[list[Row]]:
        """``n`` sequences per prompt from ``ctx.model``'s current weights, by the run's generation engine
        (``generation.engine``: the hf backend's continuous batching, or the colocated vLLM engine, given
        the weights first), with their token ids: a trainer's rollouts. A loss takes its log-probabilities
        from the training model, not from here. ``batch_size`` and ``batching`` are the hf engine's."""
        return self.generation.sample_sequences(
            self.model, self.tokenizer, prompts, n, params, batch_size=batch_size, batching=batching
        )

    def generation_metrics(self) -> dict[str, float]:
        """What the last ``sample_sequences`` cost besides sampling, for the curve: with a vLLM engine,
        ``weight_sync_time_s`` (giving it the current weights); nothing with hf."""
        engine = self.generation.engine
        return {"weight_sync_time_s": engine.stats.last_sync_s} if engine is not None else {}

    def judge_session(self, suite: str | Suite, problems: list[Problem] | None = None, **options: Any) -> Session:
        """A :class:`~ra3bench.Session` on the run's own sandbox (the one ``evaluate`` uses), for a
        trainer's rewards: ``session.judge(task_ids, programs)``. ``suite``: a suite name or a
        :class:`~ra3bench.Suite` of the trainer's own; ``problems``: which of its problems
        (default: all); ``options``: :class:`~ra3bench.EvalOptions` fields that differ from the
        ``eval:`` block (e.g. ``fail_fast=False`` for pass-fraction rewards). Closed with the run."""
        name = suite if isinstance(suite, str) else suite.name
        settings = {**self.config.eval.options(), "limit": 0, **options}
        session = Session(
            EvalSpec(suite=name, **settings),
            suite=None if isinstance(suite, str) else suite,
            problems=problems,
            sandbox=self.schedule.sandbox(),
        )
        self._sessions.append(session)
        return session

    def draw(self) -> Path:
        return plot_curves(
            {self.trainer_name: read_curve(self.run_dir)}, self.run_dir / "curves.png", train_metric=self.curve_metric
        )

    # -- checkpoints ---------------------------------------------------------------------------

    def save_checkpoint(self, step: int, state: dict) -> Path:
        """Model (or adapter) + tokenizer + the trainer's ``state`` (optimizer, scheduler, RNG...)."""
        import torch

        self._pause_clock()
        try:
            folder = self.run_dir / CHECKPOINTS / f"step-{step:06d}"
            tmp = folder.with_name(folder.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            self.model.save_pretrained(tmp)
            self.tokenizer.save_pretrained(tmp)
            full_state = {
                **state,
                "step": step,
                "train_time_s": self.train_time_s(),
                "eval_time_s": self._eval_time_s,
                "evaluated": sorted(self._evaluated),
                "curve_lines": self.curve.lines(),
                "rng": _rng_state(),
            }
            torch.save(full_state, tmp / STATE)
            shutil.rmtree(folder, ignore_errors=True)
            tmp.rename(folder)
            (self.run_dir / CHECKPOINTS / LATEST).write_text(folder.name + "\n")
            return folder
        finally:
            self._resume_clock()

    def resume_state(self) -> dict | None:
        """With ``--resume``: load the newest checkpoint into ``ctx.model``, return its state."""
        if not self.resume:
            return None
        latest = self.run_dir / CHECKPOINTS / LATEST
        if not latest.exists():
            return None
        import torch

        folder = self.run_dir / CHECKPOINTS / latest.read_text().strip()
        _load_weights(self.model, folder)
        state = torch.load(folder / STATE, weights_only=False)
        _set_rng_state(state.pop("rng"))
        self._train_time_s = state.get("train_time_s", 0.0)
        self._eval_time_s = state.get("eval_time_s", 0.0)
        self._evaluated = set(state.get("evaluated", []))
        self.curve.truncate_after(state["step"], state.get("curve_lines"))
        return state

    # -- the manifest --------------------------------------------------------------------------

    def record(self, **fields: Any) -> None:
        """Add trainer-specific facts to the manifest (e.g. E-step compute)."""
        self._manifest.update(fields)
        self._write_manifest()

    def _write_manifest(self) -> None:
        path = self.run_dir / "manifest.json"
        tmp = path.with_name(".manifest.json.tmp")
        tmp.write_text(json.dumps(self._manifest, indent=2, default=str) + "\n")
        tmp.replace(path)

    def close(self) -> None:
        self._pause_clock()
        self.record(
            finished=now_iso(), train_time_s=round(self._train_time_s, 2), eval_time_s=round(self._eval_time_s, 2)
        )
        self.curve.close()
        for session in self._sessions:
            session.close()
        self.schedule.close()
        if self.generation.uses_vllm:
            self.record(generation=self.generation.describe())
        self.generation.close()


def _carried_over(path: Path, fresh: dict) -> dict:
    """A resumed run keeps the manifest it started with (its creation time, code, trainer records)
    and appends this session's code and versions under ``resumes``: a run that spans several code
    versions says so."""
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return fresh
    session = {"at": fresh.get("created", now_iso()), "code": fresh.get("code"), "versions": fresh.get("versions")}
    kept = {k: v for k, v in old.items() if k not in ("finished", "train_time_s", "eval_time_s")}
    return fresh | kept | {"resumes": [*old.get("resumes", []), session]}


def base_manifest(trainer_name: str, config_dict: dict, model_record: dict, data_record: dict, schedule) -> dict:
    import torch
    import transformers

    return {
        "kind": "training",
        "created": now_iso(),
        "trainer": trainer_name,
        "config": config_dict,
        "model": model_record,
        "data": data_record,
        "evaluation": schedule.describe(),
        "code": code_version(),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        "host": host_info(),
    }


def _load_weights(model: Any, folder: Path) -> None:
    """Copy a checkpoint's weights into ``model`` in place (the optimizer keeps its parameters)."""
    import torch
    from safetensors.torch import load_file

    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise UsageError(f"checkpoint {folder} has no weights; delete it or start without --resume")
    state: dict = {}
    for file in files:
        state.update(load_file(str(file)))
    if hasattr(model, "peft_config"):
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(model, state)
        return
    with torch.no_grad():
        missing, unexpected = model.load_state_dict(state, strict=False)
    # tied embeddings are saved once; anything else missing means a different model
    missing = [m for m in missing if "lm_head" not in m]
    if missing or unexpected:
        raise UsageError(
            f"checkpoint {folder} does not match the model (missing {missing[:3]}, extra {unexpected[:3]})"
        )


def _rng_state() -> dict:
    import numpy as np
    import torch

    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def _set_rng_state(state: dict) -> None:
    import numpy as np
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
