"""Teacher-forced log-likelihoods: one forward pass per sequence, then mapped to lines by offsets.

A sequence is tokenized as the M-step will see it (``tokenize_example``'s layout: the prompt and
the code encoded apart, then EOS), so the E-step scores and trains on the very tokens the M-step
trains on. A token belongs to the line holding its last character (``"\\n   "`` that ends one line
and indents the next belongs to the next); EOS belongs to the last code line.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class Encoded:
    """Token ids of ``prompt + code + EOS`` and, for each code token, its ``(start, end)`` in the code."""

    ids: list[int]
    n_prompt: int
    offsets: list[tuple[int, int]]

    def token_lines(self, starts: list[int]) -> list[int]:
        """Index (into ``starts``, the annotated lines' start offsets) of the line of each code token + EOS."""
        lines = [bisect.bisect_right(starts, end - 1) - 1 for _, end in self.offsets]
        return [*lines, len(starts) - 1]


class Encoder:
    """Encodes (prompt, code) pairs; caches the prompt's ids (G rollouts share a prompt)."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self._prompts: dict[str, list[int]] = {}

    def prompt_ids(self, prompt: str) -> list[int]:
        if prompt not in self._prompts:
            self._prompts[prompt] = list(self.tokenizer.encode(prompt, add_special_tokens=False)) if prompt else []
        return self._prompts[prompt]

    def code(self, code: str) -> tuple[list[int], list[tuple[int, int]]]:
        enc = self.tokenizer(code, add_special_tokens=False, return_offsets_mapping=True)
        return list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]

    def __call__(self, prompt: str, code: str, eos: bool = True) -> Encoded:
        prompt_ids = self.prompt_ids(prompt)
        ids, offsets = self.code(code)
        tail = [self.tokenizer.eos_token_id] if eos else []
        return Encoded(prompt_ids + ids + tail, len(prompt_ids), offsets)


def vocab_texts(tokenizer: Any) -> list[str]:
    """Each token id's text, decoded alone (exact for byte-level BPE, the project's tokenizers)."""
    return tokenizer.batch_decode([[i] for i in range(len(tokenizer))], clean_up_tokenization_spaces=False)


def think_mask(texts: list[str], size: int) -> torch.Tensor:
    """Vocabulary tokens that start a comment line (``#`` after optional blanks): q's ``<think>``."""
    mask = torch.zeros(size, dtype=torch.bool)
    for i, text in enumerate(texts[:size]):
        mask[i] = text.lstrip().startswith("#")
    return mask


def newline_ids(texts: list[str], eos_id: int) -> list[int]:
    """Tokens that end a comment: any holding a line break, and EOS."""
    return [*(i for i, t in enumerate(texts) if "\n" in t or "\r" in t), eos_id]


def padded(seqs: Sequence[list[int]], pad_id: int, device: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids and attention mask (a causal model's logits at real positions do not change)."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        mask[i, : len(s)] = 1
    return ids.to(device), mask.to(device)


def logits_at(
    model: Any, seqs: Sequence[list[int]], positions: Sequence[list[int]], pad_id: int, micro: int
) -> Iterator[tuple[int, torch.Tensor]]:
    """(i, float logits [len(positions[i]), vocab]) for each sequence ``i``: the logits that predict
    the token after each position; only the union of a micro-batch's positions meets the vocabulary
    (``logits_to_keep``). No grad unless the caller enables it."""
    device = next(model.parameters()).device
    for first in range(0, len(seqs), max(1, micro)):
        rows = range(first, min(len(seqs), first + max(1, micro)))
        keep = sorted({p for i in rows for p in positions[i]})
        if not keep:
            yield from ((i, torch.zeros((0, 0))) for i in rows)
            continue
        ids, mask = padded([seqs[i] for i in rows], pad_id, device)
        where = {p: j for j, p in enumerate(keep)}
        logits = model(input_ids=ids, attention_mask=mask, logits_to_keep=torch.tensor(keep, device=device)).logits
        for b, i in enumerate(rows):
            yield i, logits[b, [where[p] for p in positions[i]]].float()


def token_logprobs(model: Any, seqs: Sequence[list[int]], pad_id: int, micro: int = 8) -> list[torch.Tensor]:
    """log p(token_i | tokens_<i) for i >= 1 of each sequence: one forward pass per micro-batch."""
    out: list[torch.Tensor] = [torch.zeros(0)] * len(seqs)
    positions = [list(range(len(s) - 1)) for s in seqs]
    with torch.no_grad():
        for i, logits in logits_at(model, seqs, positions, pad_id, micro):
            out[i] = gather_logprobs(logits, torch.tensor(seqs[i][1:])).cpu()
    return out


def gather_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log-softmax of ``logits`` at ``targets``, without materialising the whole log-softmax."""
    targets = targets.to(logits.device)
    return logits.gather(-1, targets[:, None])[:, 0] - logits.logsumexp(-1)


def line_scores(logprobs: torch.Tensor, enc: Encoded, starts: list[int], n_lines: int) -> tuple[list[float], list[int]]:
    """(summed log-prob, token count) per annotated line, from one sequence's token log-probs."""
    sums, counts = [0.0] * n_lines, [0] * n_lines
    code_lp = logprobs[enc.n_prompt - 1 :] if enc.n_prompt else logprobs  # the first token has no prediction
    lines = enc.token_lines(starts)
    skip = 0 if enc.n_prompt else 1
    for line, lp in zip(lines[skip:], code_lp.tolist(), strict=True):
        sums[line] += lp
        counts[line] += 1
    return sums, counts


def decision_logprobs(logits: torch.Tensor, mask: torch.Tensor, temperature: float, bias: float) -> torch.Tensor:
    """[n, 2]: log q(act), log q(think) at each row of ``logits``: think = the mass of ``mask`` tokens."""
    scaled = logits / temperature + bias * mask.to(logits.dtype).to(logits.device)
    total = scaled.logsumexp(-1)
    think = scaled.masked_fill(~mask.to(logits.device), float("-inf")).logsumexp(-1)
    act = scaled.masked_fill(mask.to(logits.device), float("-inf")).logsumexp(-1)
    return torch.stack([act - total, think - total], dim=-1)
