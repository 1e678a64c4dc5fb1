"""Sampling the policy: G completions per training problem, with their tokens and their programs.

Prompts are built as an evaluation builds them (``ra3bench.training.build_prompt``: the suite's
completion prompt, or its chat instruction with evalplus's response prefix), generation stops at
the same stop sequences, and the program is found with the same ``extract_program``: the policy
is rewarded for exactly what an evaluation would score. The tokens kept for the loss are the ones
the model sampled, up to and including EOS or the token that completed a stop sequence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ra3bench import Problem
from ra3bench.training import (
    Prompt,
    PromptStyle,
    auto_style,
    build_prompt,
    cut_at_stop,
    eos_ids,
    extract_program,
    generated_span,
    render_prompt,
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
) -> list[Rollout]:
    """``group_size`` rollouts per ``(set name, suite name, problem)``, grouped in item order."""
    import torch

    was_training = model.training
    model.eval()
    prompts = [build_prompt(problem, suite_name, style) for _, suite_name, problem in items]
    per_call = max(1, generation_batch // group_size)
    out: list[Rollout] = []
    try:
        for start in range(0, len(items), per_call):
            chunk = list(range(start, min(len(items), start + per_call)))
            texts = [render_prompt(prompts[i], tokenizer) for i in chunk]
            tokenizer.padding_side = "left"
            enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
            stop = sorted({s for i in chunk for s in prompts[i].stop if s})
            kwargs: dict[str, Any] = {"stop_strings": stop, "tokenizer": tokenizer} if stop else {}
            device = next(model.parameters()).device
            with torch.inference_mode():
                generated = model.generate(
                    **enc.to(device),
                    do_sample=True,
                    temperature=temperature,
                    top_p=top_p,
                    top_k=None,
                    max_new_tokens=max_new_tokens,
                    num_return_sequences=group_size,
                    pad_token_id=tokenizer.pad_token_id,
                    **kwargs,
                )
            width = enc["input_ids"].shape[1]
            ends = eos_ids(model, tokenizer)
            for row, tokens in enumerate(generated[:, width:].tolist()):
                i = chunk[row // group_size]
                set_name, _, problem = items[i]
                prompt_ids = enc["input_ids"][row // group_size][enc["attention_mask"][row // group_size] == 1]
                out.append(_rollout(set_name, problem, prompts[i], prompt_ids.tolist(), tokens, tokenizer, style, ends))
    finally:
        if was_training:
            model.train()
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
