"""The training core's public API: what a trainer plugin may import (with the names of ``ra3bench``).

* the contract: :class:`Trainer`, its configs, :class:`TrainContext` (``ctx.evaluate``,
  ``ctx.judge_session`` for rewards on the run's sandbox, checkpoints, the curve);
* data: :class:`TrainingExample`, :func:`tokenize_example`;
* rollouts built exactly as evaluations build them, so a policy is rewarded for what an
  evaluation would score: :func:`build_prompt` / :class:`Prompt` / :class:`PromptStyle`,
  :func:`render_prompt` (chat template or plain text), :func:`auto_style`, :func:`eos_ids`,
  :func:`cut_at_stop`, :func:`generated_span` and :func:`extract_program`;
* sampling as evaluations sample (continuous batching, one seeded generator per sample):
  :func:`sample_sequences`, which gives token ids (:class:`Row`); a loss takes its log-probabilities
  from the training model. In a run, ``ctx.sample_sequences`` samples with the run's engine
  (``generation.engine``: hf, or a colocated vLLM given the current weights first).

For a trainer's own tests and experiments: :func:`load_train_config` (a trainer's whole config from
its name, a YAML file and overrides, as ``ra3bench train`` loads it, to build a :class:`TrainContext`
around a model of one's own) and :func:`tiny_model` / :func:`tiny_tokenizer` (a 2-layer Llama from a
config, its byte-level BPE trained on a few lines of Python or on a corpus of one's own).
"""

from ra3bench.backends.hf import auto_style, eos_ids, generated_span, render_prompt, sample_sequences
from ra3bench.backends.hf_batching import Row
from ra3bench.extract import extract_program
from ra3bench.prompts import Prompt, PromptStyle, build_prompt, cut_at_stop
from ra3bench.tiny import tiny_model, tiny_tokenizer
from ra3bench.training.base import (
    TRAINERS,
    DataConfig,
    EvalConfig,
    GenerationConfig,
    LoraConfig,
    ModelConfig,
    RunConfig,
    Trainer,
    TrainingExample,
)
from ra3bench.training.context import TrainContext
from ra3bench.training.data import tokenize_example
from ra3bench.training.runner import load_train_config

__all__ = [
    "TRAINERS",
    "DataConfig",
    "EvalConfig",
    "GenerationConfig",
    "LoraConfig",
    "ModelConfig",
    "Prompt",
    "PromptStyle",
    "Row",
    "RunConfig",
    "TrainContext",
    "Trainer",
    "TrainingExample",
    "auto_style",
    "build_prompt",
    "cut_at_stop",
    "eos_ids",
    "extract_program",
    "generated_span",
    "load_train_config",
    "render_prompt",
    "sample_sequences",
    "tiny_model",
    "tiny_tokenizer",
    "tokenize_example",
]
