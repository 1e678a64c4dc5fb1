"""GRPO's arithmetic: group-normalised advantages, per-token log-probs, the clipped policy loss.

GRPO (Shao et al. 2024, DeepSeekMath) samples G completions per prompt and uses the group as its
own baseline: ``A_i = (r_i - mean(r)) / std(r)`` (or ``r_i - mean(r)`` with ``scale=False``, as
Dr. GRPO argues). The loss is PPO's clipped surrogate per completion token, plus
``beta * KL(policy || reference)`` with the k3 estimator ``exp(q) - q - 1``, ``q = ref - logp``.
Token losses are summed over the whole step and divided by its number of completion tokens
(DAPO's token-level mean: a long completion is not down-weighted per token).

A sample without a reward (``None``: the sandbox failed) is *dropped*: no advantage, no tokens in
the loss, not in its group's mean or std. A group with fewer than two rewards has no baseline and
gives advantage 0 to the samples it has.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any


def group_advantages(
    rewards: list[float | None], group_size: int, *, scale: bool = True, eps: float = 1e-4
) -> tuple[list[float], list[bool]]:
    """Per sample: its advantage and whether it takes part in the update (False: no reward)."""
    if len(rewards) % group_size:
        raise ValueError(f"{len(rewards)} rewards do not split into groups of {group_size}")
    advantages: list[float] = []
    keep: list[bool] = []
    for start in range(0, len(rewards), group_size):
        group = rewards[start : start + group_size]
        scored = [r for r in group if r is not None]
        mean = statistics.fmean(scored) if scored else 0.0
        std = statistics.stdev(scored) if len(scored) > 1 else 0.0
        for r in group:
            keep.append(r is not None)
            if r is None or len(scored) < 2:
                advantages.append(0.0)
            else:
                advantages.append((r - mean) / (std + eps) if scale else r - mean)
    return advantages, keep


@dataclass
class Rows:
    """A micro-batch: left-padded prompts then right-padded completions, one row per sample."""

    input_ids: Any  # [B, P + C]
    attention_mask: Any
    position_ids: Any
    completion_mask: Any  # [B, C]: 1 on the sample's own completion tokens
    width: int  # C

    @classmethod
    def build(cls, prompts: list[list[int]], completions: list[list[int]], pad_id: int) -> Rows:
        import torch

        p_width = max(len(p) for p in prompts)
        c_width = max(1, max(len(c) for c in completions))
        ids = torch.full((len(prompts), p_width + c_width), pad_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        c_mask = torch.zeros((len(prompts), c_width), dtype=torch.float32)
        for i, (p, c) in enumerate(zip(prompts, completions, strict=True)):
            ids[i, p_width - len(p) : p_width] = torch.tensor(p, dtype=torch.long)
            mask[i, p_width - len(p) : p_width] = 1
            if c:
                ids[i, p_width : p_width + len(c)] = torch.tensor(c, dtype=torch.long)
                mask[i, p_width : p_width + len(c)] = 1
                c_mask[i, : len(c)] = 1.0
        # positions as generate() numbers them under left padding
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        return cls(ids, mask, positions, c_mask, c_width)


def completion_logprobs(model: Any, rows: Rows, temperature: float = 1.0) -> Any:
    """log pi(token) of each completion token, [B, C] (logits scaled by the sampling temperature)."""
    import torch

    device = next(model.parameters()).device
    logits = model(
        input_ids=rows.input_ids.to(device),
        attention_mask=rows.attention_mask.to(device),
        position_ids=rows.position_ids.to(device),
        logits_to_keep=rows.width + 1,
    ).logits[:, :-1]
    logits = logits.float() / temperature
    targets = rows.input_ids[:, -rows.width :].to(device)
    picked = torch.gather(logits, -1, targets.unsqueeze(-1)).squeeze(-1)
    return picked - torch.logsumexp(logits, dim=-1)


def policy_loss(
    logp: Any,
    old_logp: Any,
    advantages: Any,
    mask: Any,
    *,
    clip_eps: float,
    beta: float = 0.0,
    ref_logp: Any = None,
) -> tuple[Any, dict[str, float]]:
    """The summed token loss of a micro-batch (divide by the step's token count) and its sums for logging."""
    import torch

    ratio = torch.exp(logp - old_logp)
    adv = advantages.unsqueeze(-1)
    clipped = torch.clamp(ratio, 1 - clip_eps, 1 + clip_eps)
    per_token = -torch.min(ratio * adv, clipped * adv)
    stats = {"clipped_tokens": float(((ratio - clipped).abs() > 0).float().mul(mask).sum())}
    if beta > 0 and ref_logp is not None:
        q = ref_logp - logp
        kl = torch.exp(q) - q - 1
        per_token = per_token + beta * kl
        stats["kl_sum"] = float((kl.detach() * mask).sum())
    return (per_token * mask).sum(), stats
