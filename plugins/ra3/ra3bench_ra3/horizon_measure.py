"""How much of an act decision's advantage comes from other decisions, per ``reward_horizon``.

``benchmarks/ra3_horizons.py`` runs it on real code (SmolLM2, the MBPP training split).

One E-step step's rollouts (q = the model, as an E-step starts; ``group_size`` per snippet, the
MBPP training split) and pi's scores of them, then every horizon's rewards and group advantages
from the *same* rollouts and scores, so the horizons differ only in what they sum:

* ``span_differs``: share of act decisions (where q had a choice) whose horizon covers other lines
  in other rollouts of its group (what the issue asks about ``until_next_think``);
* ``crosstalk``: mean |A| where the whole group acted / mean |A| of all decisions (the E-step logs
  it per step as ``estep_act_crosstalk``);
* ``mixed_abs_adv``: mean |A| where the group's decisions differed: the signal the E-step learns from;
* ``unanimous_abs_adv`` and ``noise_to_signal``: mean |A| where the whole group acted (noise), and its
  ratio to the signal.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, get_args

import torch

from ra3bench_ra3.config import RA3Config
from ra3bench_ra3.estep import abs_advantages, advantages, crosstalk, group_ends, group_rewards, horizon_end, score
from ra3bench_ra3.rollout import Policy, Rollout, Snippet, sample


def measure_horizons(model: Any, tokenizer: Any, snippets: list[Snippet], cfg: RA3Config, seed: int = 0) -> dict:
    """Per horizon: span_differs, crosstalk, mixed_abs_adv, from one set of rollouts and scores."""
    policy = Policy.build(tokenizer, cfg, model.get_output_embeddings().weight.shape[0])
    rollouts = [Rollout(s) for s in snippets for _ in range(cfg.group_size)]
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        sample(model, rollouts, policy)
    _, scored = score(model, rollouts, policy)
    out: dict[str, Any] = {"rollouts": len(rollouts), "decisions": 0, "thinks": 0}
    out["decisions"] = sum(w is not None for r in rollouts for w in r.widths)
    out["thinks"] = sum(sum(r.thinks) for r in rollouts)
    horizons = get_args(RA3Config.__annotations__["reward_horizon"]) or (
        "until_next_think", "until_group_think", "next_line", "return_to_go")  # fmt: skip
    for horizon in horizons:
        c = replace(cfg, reward_horizon=horizon)
        per = [p for p, _ in group_rewards(rollouts, scored, c)]
        adv = advantages(per, c.group_size, c.normalize_advantage)
        split = abs_advantages(rollouts, adv, c.group_size)
        out[horizon] = {
            "span_differs": _span_differs(rollouts, c),
            "crosstalk": crosstalk(rollouts, adv, c.group_size),
            "mixed_abs_adv": _mean(split.mixed),
            "unanimous_abs_adv": _mean(split.acted),
        }
        out[horizon]["noise_to_signal"] = out[horizon]["unanimous_abs_adv"] / max(1e-12, out[horizon]["mixed_abs_adv"])
    return out


def _span_differs(rollouts: list[Rollout], cfg: RA3Config) -> float:
    """Share of act decisions whose horizon's end differs between the rollouts of their group."""
    differs = total = 0
    for first in range(0, len(rollouts), cfg.group_size):
        group = rollouts[first : first + cfg.group_size]
        n = len(group[0].snippet.bounds)
        shared = group_ends(group)
        for r in group:
            for j in range(n):
                if r.widths[j] is None or r.thinks[j]:
                    continue
                total += 1
                differs += len({horizon_end(o, j, cfg, shared) for o in group}) > 1
    return differs / max(1, total)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0
