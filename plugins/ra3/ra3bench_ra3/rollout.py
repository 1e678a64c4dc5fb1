"""q's rollouts: at each boundary <act> or <think>, and on <think> one comment line.

The decision at a boundary is q's next-token distribution where the expert's next line would
start (the tokens before the one that holds its first non-blank character): <think> is the mass
of the tokens that open a comment (``#`` after optional blanks, :func:`scoring.think_mask`).
One forward pass over the current text decides every boundary up to the next <think>; only then
is a comment written (sampled after ``indentation + "#"`` until a line break or
``max_latent_tokens``) and the text tokenized again. Act-only stretches cost no generation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from ra3bench_ra3.annotate import (
    Comment,
    boundaries,
    comment_line,
    indentation,
    insert,
    line_spans,
    sanitize,
    split_lines,
)
from ra3bench_ra3.config import RA3Config
from ra3bench_ra3.scoring import Encoded, Encoder, decision_logprobs, logits_at, newline_ids, think_mask, vocab_texts


@dataclass
class Snippet:
    prompt: str
    code: str
    index: int = -1  # in ctx.examples
    lines: list[str] = field(init=False)
    bounds: list[int] = field(init=False)

    def __post_init__(self) -> None:
        self.lines = split_lines(self.code)
        self.bounds = boundaries(self.code)


@dataclass
class Rollout:
    """One annotated version of a snippet: per boundary the decision, and the comments written."""

    snippet: Snippet
    comments: list[Comment] = field(default_factory=list)
    thinks: list[bool] = field(default_factory=list)  # per boundary, in order
    widths: list[int | None] = field(default_factory=list)  # blanks before the decision token; None: no choice
    probs: list[float | None] = field(default_factory=list)  # q(<think>) when it decided; None: no choice
    malformed: list[bool] = field(default_factory=list)  # per comment
    latent_tokens: int = 0  # comment tokens generated

    @property
    def annotated(self) -> str:
        return insert(self.snippet.code, self.comments)


@dataclass
class Policy:
    """What sampling needs besides q: the tokenizer's think and stop tokens and the knobs."""

    encoder: Encoder
    mask: torch.Tensor  # think tokens
    stop_ids: list[int]  # tokens that end a comment
    temperature: float = 1.0
    bias: float = 0.0
    max_tokens: int = 24
    micro: int = 8

    @classmethod
    def build(cls, tokenizer: Any, cfg: RA3Config, vocab_size: int) -> Policy:
        """From the tokenizer's vocabulary (decoded once) and the knobs."""
        texts = vocab_texts(tokenizer)
        return cls(
            Encoder(tokenizer), think_mask(texts, vocab_size), newline_ids(texts, tokenizer.eos_token_id),
            cfg.latent_temperature, cfg.think_bias, cfg.max_latent_tokens, cfg.estep_micro_batch,
        )  # fmt: skip

    def think_probs(self, logits: torch.Tensor) -> list[float]:
        """q(<think>) at each row of ``logits`` (tempered, biased: as sampled)."""
        return decision_logprobs(logits, self.mask, self.temperature, self.bias)[:, 1].exp().tolist()


def content_start(annotated_starts: list[int], owner: list[int], line: int, text: str) -> int:
    """Offset, in the annotated text, of code line ``line``'s first non-blank character."""
    return annotated_starts[owner.index(line)] + len(indentation(text))


def decision_token(enc: Encoded, char: int) -> int | None:
    """Index in ``enc.ids`` of the code token holding ``char``; None if nothing precedes it (no prompt)."""
    k = next((k for k, (_, end) in enumerate(enc.offsets) if end > char), None)
    return None if k is None or enc.n_prompt + k == 0 else enc.n_prompt + k


def sample(q: Any, rollouts: list[Rollout], policy: Policy) -> int:
    """Fill each rollout's decisions and comments; the tokens q processed."""
    pad = policy.encoder.tokenizer.pad_token_id
    pending, tokens = [r for r in rollouts if r.snippet.bounds], 0
    while pending:
        encs, plans = [], []
        for r in pending:
            enc = policy.encoder(r.snippet.prompt, r.annotated, eos=False)
            starts, owner = line_spans(r.snippet.code, r.comments)
            plan = []
            for b in r.snippet.bounds[len(r.thinks) :]:
                char = content_start(starts, owner, b, r.snippet.lines[b])
                at = decision_token(enc, char)
                width = None if at is None else enc.offsets[at - enc.n_prompt][0] - starts[owner.index(b)]
                plan.append((b, at, width))
            encs.append(enc)
            plans.append(plan)
            tokens += len(enc.ids)
        positions = [[at - 1 for _, at, _ in plan if at is not None] for plan in plans]
        writers: list[tuple[Rollout, int]] = []
        with torch.no_grad():
            for i, logits in logits_at(q, [e.ids for e in encs], positions, pad, policy.micro):
                lps = iter(policy.think_probs(logits) if positions[i] else [])
                r = pending[i]
                for b, at, width in plans[i]:
                    p = None if at is None else next(lps)
                    think = p is not None and bool(torch.rand(()) < p)
                    r.thinks.append(think)
                    r.widths.append(width)
                    r.probs.append(p)
                    if think:
                        writers.append((r, b))
                        break
        if writers:
            tokens += write_comments(q, writers, policy)
        pending = [r for r, _ in writers if len(r.thinks) < len(r.snippet.bounds)]
    return tokens


def write_comments(q: Any, writers: list[tuple[Rollout, int]], policy: Policy) -> int:
    """Sample one comment per (rollout, line) after ``indentation + "#"``; the tokens processed."""
    from transformers import GenerationConfig

    tok, stop = policy.encoder.tokenizer, set(policy.stop_ids)
    contexts = []
    for r, b in writers:
        prefix = insert("".join(r.snippet.lines[:b]), [c for c in r.comments if c.line < b])
        ids, _ = policy.encoder.code(prefix + indentation(r.snippet.lines[b]) + "#")
        contexts.append(policy.encoder.prompt_ids(r.snippet.prompt) + ids)
    width = max(len(c) for c in contexts)
    device = next(q.parameters()).device
    ids = torch.tensor([[tok.pad_token_id] * (width - len(c)) + c for c in contexts], device=device)
    mask = torch.tensor([[0] * (width - len(c)) + [1] * len(c) for c in contexts], device=device)
    config = GenerationConfig(
        do_sample=True,
        temperature=policy.temperature,
        top_k=0,
        top_p=1.0,
        max_new_tokens=policy.max_tokens,
        eos_token_id=policy.stop_ids,
        pad_token_id=tok.pad_token_id,
    )
    with torch.no_grad():
        out = q.generate(input_ids=ids, attention_mask=mask, generation_config=config)[:, width:].tolist()
    for (r, b), new in zip(writers, out, strict=True):
        new = new[: next((i + 1 for i, t in enumerate(new) if t in stop), len(new))]
        text = tok.decode(new, skip_special_tokens=False, clean_up_tokenization_spaces=False)
        if new and new[-1] == tok.eos_token_id:
            text = tok.decode(new[:-1], clean_up_tokenization_spaces=False)  # EOS ends the comment unclosed
        content, ok = sanitize(text)
        r.comments.append(Comment(b, comment_line(r.snippet.lines[b], content)))
        r.malformed.append(not ok)
        r.latent_tokens += len(new)
    return sum(len(c) for c in contexts) + sum(len(n) for n in out)
