"""What the E-step did, measured on snippets it never trains on: the think rate and what comments buy pi.

The E-step's own log (``estep_reward``, ``estep_think_rate``) is measured on the batches it trains
on, with the policy as it was before each step's update; it cannot say whether q moved away from the
prior or whether any comment raised the code's likelihood. A probe can: the same fixed, held-out
snippets, one sampled rollout of q each (a fixed seed, under a forked RNG), before the E-step and
after it, scored by pi against the same snippets without comments.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import torch

from ra3bench_ra3.config import RA3Config
from ra3bench_ra3.estep import _norm, score
from ra3bench_ra3.rollout import Policy, Rollout, Snippet, sample

PROBE_SEED = 104_729  # the probe's sampling seed: the same draws before and after, iteration after iteration


@dataclass(frozen=True)
class ProbeResult:
    """q's rollouts on the probe snippets, scored by pi."""

    think_rate: float  # share of the boundaries where q had a choice that got a comment
    gain: float  # mean of norm(log pi(code | q's comments)) - norm(log pi(code)): the E-step's quantity, c aside
    gain_per_line: float  # the same in nats per code line, summed (not normalised): comparable across norms
    reward: float  # gain - penalty_c * comments per snippet: what the E-step maximises, against acting everywhere

    def fields(self, when: str) -> dict[str, float]:
        """``probe_<name>_<when>`` for a curve line."""
        return {f"probe_{name}_{when}": value for name, value in vars(self).items()}


MIN_SNIPPETS = 32  # below this a corpus keeps every snippet for the E-step (no probe)


def held_out(snippets: list[Snippet], wanted: int, seed: int) -> tuple[list[Snippet], list[Snippet]]:
    """(probe snippets, the rest): ``wanted`` snippets, at most a quarter of them, chosen by ``seed``; none from
    a corpus of fewer than MIN_SNIPPETS (a handful of snippets is all the E-step has)."""
    n = min(wanted, len(snippets) // 4) if len(snippets) >= MIN_SNIPPETS else 0
    chosen = set(random.Random(seed).sample(range(len(snippets)), n)) if n > 0 else set()
    return [s for i, s in enumerate(snippets) if i in chosen], [s for i, s in enumerate(snippets) if i not in chosen]


def probe(q: Any, pi: Any, snippets: list[Snippet], policy: Policy, cfg: RA3Config) -> ProbeResult:
    """One rollout of ``q`` per snippet, scored by ``pi`` against the bare snippet."""
    devices = sorted({p.device.index or 0 for p in q.parameters() if p.device.type == "cuda"})
    rollouts = [Rollout(s) for s in snippets]
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(PROBE_SEED)
        sample(q, rollouts, policy)
    bare = [Rollout(s) for s in snippets]
    _, scored = score(pi, rollouts + bare, policy)
    with_comments, without = scored[: len(rollouts)], scored[len(rollouts) :]
    decided = sum(w is not None for r in rollouts for w in r.widths)
    thinks = sum(sum(r.thinks) for r in rollouts)
    gains = [_norm(a.lp, a.n, cfg) - _norm(b.lp, b.n, cfg) for a, b in zip(with_comments, without, strict=True)]
    lines = [max(1, len(s.lines)) for s in snippets]
    per_line = [(a.lp - b.lp) / n for a, b, n in zip(with_comments, without, lines, strict=True)]
    n = max(1, len(snippets))
    return ProbeResult(
        think_rate=thinks / max(1, decided),
        gain=sum(gains) / n,
        gain_per_line=sum(per_line) / n,
        reward=(sum(gains) - cfg.penalty_c * thinks) / n,
    )
