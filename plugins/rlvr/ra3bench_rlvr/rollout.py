"""Sampling the policy: G completions per training problem, with their tokens and their programs.

Prompts are built as an evaluation builds them (``ra3bench.prompts.build_prompt``: the suite's
completion prompt, or its chat instruction with evalplus's response prefix), generation stops at
the same stop sequences, and the program is found with the same ``extract_program``: the policy
is rewarded for exactly what an evaluation would score. The tokens kept for the loss are the ones
the model sampled, up to and including EOS or the token that completed a stop sequence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ra3bench.extract import extract_program
from ra3bench.prompts import Prompt, PromptStyle, build_prompt, cut_at_stop
from ra3bench.suites.base import Problem


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
    style = PromptStyle.parse(asked)
    if style is not None:
        return style
    return PromptStyle.CHAT if getattr(tokenizer, "chat_template", None) else PromptStyle.COMPLETION


def render(prompt: Prompt, tokenizer: Any) -> str:
    if prompt.style is PromptStyle.COMPLETION:
        return prompt.text
    text = tokenizer.apply_chat_template(prompt.messages, add_generation_prompt=True, tokenize=False)
    return text + prompt.response_prefix


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
            texts = [render(prompts[i], tokenizer) for i in chunk]
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
            ends = _eos_ids(model, tokenizer)
            for row, tokens in enumerate(generated[:, width:].tolist()):
                i = chunk[row // group_size]
                set_name, _, problem = items[i]
                prompt_ids = enc["input_ids"][row // group_size][enc["attention_mask"][row // group_size] == 1]
                out.append(_rollout(set_name, problem, prompts[i], prompt_ids.tolist(), tokens, tokenizer, style, ends))
    finally:
        if was_training:
            model.train()
    return out


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    ids = getattr(model.generation_config, "eos_token_id", None)
    ids = ids if isinstance(ids, list) else [ids]
    return {i for i in [*ids, tokenizer.eos_token_id] if i is not None}


def _rollout(
    set_name: str,
    problem: Problem,
    prompt: Prompt,
    prompt_ids: list[int],
    tokens: list[int],
    tok: Any,
    style: PromptStyle,
    eos_ids: set[int],
) -> Rollout:
    end = next((k for k, t in enumerate(tokens) if t in eos_ids), None)
    if end is not None:
        # a row that ended at a stop string is padded afterwards, and the pad may be the EOS id
        # (SmolLM2): that pad is not a sampled token and must not enter the loss
        ended_at_stop = any(s and s in tok.decode(tokens[:end], skip_special_tokens=True) for s in prompt.stop)
        tokens, finish = (tokens[:end], "stop") if ended_at_stop else (tokens[: end + 1], "eos")
    else:
        length = len(tokens)
        while length and tokens[length - 1] == tok.pad_token_id:
            length -= 1
        finish = "length" if length == len(tokens) else "stop"
        tokens = tokens[:length]
    text, stopped = cut_at_stop(tok.decode(tokens, skip_special_tokens=True), prompt.stop)
    if stopped:
        finish = "stop"
    program = extract_program(prompt.response_prefix + text, problem, style.value).program
    return Rollout(set_name, problem, prompt_ids, tokens, finish, program)
