"""pass@k (the unbiased estimator of Chen et al. 2021) and bootstrap confidence intervals."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


def pass_at_k(n: int, c: int, k: int) -> float:
    """1 - C(n-c, k) / C(n, k), in the product form that does not overflow."""
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples, got {n}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


@dataclass(frozen=True)
class PassAtK:
    k: int
    value: float  # fraction 0..1, mean over problems with at least k samples
    ci_low: float
    ci_high: float
    n_problems: int  # problems that entered the mean


def ks_for(counts: Mapping[str, tuple[int, int]], requested: Sequence[int] | None = None) -> list[int]:
    """Every k <= the smallest n (or the requested ks that fit), so each value averages all problems."""
    if not counts:
        return []
    n_min = min(n for n, _ in counts.values())
    if requested:
        return sorted({k for k in requested if 1 <= k <= n_min})
    return list(range(1, n_min + 1))


def pass_at_k_with_ci(
    counts: Mapping[str, tuple[int, int]],
    k: int,
    *,
    confidence: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> PassAtK:
    """Mean pass@k over problems, with a percentile bootstrap interval over problems.

    ``counts`` maps task id to (n samples, c correct). Problems with fewer than k samples
    are left out (and ``n_problems`` says how many entered).
    """
    # sorted by task id: the interval must not depend on the order verdicts arrived in
    per_problem = np.array([pass_at_k(n, c, k) for _, (n, c) in sorted(counts.items()) if n >= k], dtype=float)
    if per_problem.size == 0:
        return PassAtK(k, float("nan"), float("nan"), float("nan"), 0)
    mean = float(per_problem.mean())
    low, high = bootstrap_ci(per_problem, confidence=confidence, n_boot=n_boot, seed=seed)
    return PassAtK(k, mean, low, high, int(per_problem.size))


def bootstrap_ci(
    values: np.ndarray, *, confidence: float = 0.95, n_boot: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean; resampling units are problems."""
    values = np.asarray(values, dtype=float)
    if values.size == 1:
        return float(values[0]), float(values[0])
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, values.size, size=(n_boot, values.size))
    means = values[idx].mean(axis=1)
    alpha = (1.0 - confidence) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))
