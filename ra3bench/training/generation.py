"""Where a training run's samples come from: the in-memory model, or a colocated vLLM engine kept current.

Evaluation points and a trainer's rollouts both ask here (``ctx.evaluate``, ``ctx.sample_sequences``),
so the ``generation:`` block of the config picks one engine for both. With ``engine: vllm`` the engine
starts on first use from the model as it is then, and every later use first gives it the model's
current weights: a sample is always drawn from the weights being trained, as TRL's colocate mode does.
The model's weights are sent whenever asked, not only when they look changed: a missed update would
silently sample a stale policy, and the cost is measured (``weight_sync`` in the manifest).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ra3bench.backends.base import Backend, GenerationParams
from ra3bench.backends.hf import eos_ids, sample_sequences
from ra3bench.backends.hf_batching import Row
from ra3bench.backends.vllm_colocated import ColocatedVLLM, ColocatedVLLMBackend
from ra3bench.prompts import Prompt, PromptStyle
from ra3bench.spec import EvalOptions
from ra3bench.training.base import GenerationConfig

ENGINE_LOG = "generation/vllm-engine.log"  # in the run folder


class TrainingGeneration:
    """The run's generation engine: ``hf`` (nothing to hold) or one :class:`ColocatedVLLM`."""

    def __init__(self, config: GenerationConfig, run_dir: Path, seed: int = 0) -> None:
        self.config = config
        self.run_dir = run_dir
        self.seed = seed
        self.engine: ColocatedVLLM | None = None

    @property
    def uses_vllm(self) -> bool:
        return self.config.engine == "vllm"

    def ready(self, model: Any, tokenizer: Any) -> ColocatedVLLM | None:
        """The vLLM engine holding ``model``'s current weights (started on first use); None for hf."""
        if not self.uses_vllm:
            return None
        if self.engine is None:
            self.engine = ColocatedVLLM(
                self.config.vllm, model, tokenizer, seed=self.seed, log=self.run_dir / ENGINE_LOG
            )
        else:
            self.engine.sync(model)
        return self.engine

    def release(self) -> None:
        """After a use: the engine frees its device memory (``generation.vllm.sleep``) for training."""
        if self.engine is not None:
            self.engine.release()

    def eval_backend(self, model: Any, tokenizer: Any, options: EvalOptions, label: str) -> Backend | None:
        """The backend an evaluation point generates with (after :meth:`ready`); None: the session's hf one."""
        if self.engine is None:
            return None
        return ColocatedVLLMBackend(
            self.engine,
            tokenizer,
            options.generation(),
            PromptStyle.parse(options.prompt_style),
            end_ids=eos_ids(model, tokenizer),
            label=label,
        )

    def sample_sequences(
        self,
        model: Any,
        tokenizer: Any,
        prompts: list[Prompt],
        n: int,
        params: GenerationParams,
        *,
        batch_size: int = 16,
        batching: str = "continuous",
    ) -> list[list[Row]]:
        """``n`` sequences per prompt from the model's current weights (see ``ra3bench.training.sample_sequences``;
        ``batch_size`` and ``batching`` are the hf engine's, vLLM schedules its own)."""
        engine = self.ready(model, tokenizer)
        if engine is None:
            return sample_sequences(model, tokenizer, prompts, n, params, batch_size=batch_size, batching=batching)
        try:
            backend = ColocatedVLLMBackend(engine, tokenizer, params, end_ids=eos_ids(model, tokenizer))
            return backend.sample_rows(prompts, n)
        finally:
            self.release()

    def describe(self) -> dict:
        """The manifest's ``generation``: the engine, and what keeping it current cost."""
        if self.engine is None:
            return {"engine": self.config.engine}
        return {**self.engine.describe(), "log": ENGINE_LOG}

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()
            self.engine = None
