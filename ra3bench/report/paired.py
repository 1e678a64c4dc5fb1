"""Paired statistics over problems: the same problems were run twice, so compare them problem by problem.

Pairing removes the between-problem variance (easy and hard problems), which dominates the
unpaired intervals of each run, so a small real change is detectable on a few hundred problems.

* :func:`paired_bootstrap_ci`: percentile bootstrap of the mean per-problem difference, the
  problems resampled with replacement (same indices for both runs), fixed seed;
* :func:`mcnemar_exact`: per-problem outcomes that are 0/1 (pass@1 with n = 1, or pass@n): the
  exact McNemar test, a two-sided binomial test of the discordant pairs against 1/2;
* :func:`sign_flip_test`: per-problem pass rates (n > 1): the paired permutation test that flips
  the sign of each problem's difference (exact up to 20 changed problems, else Monte Carlo).
"""

from __future__ import annotations

from fractions import Fraction
from math import comb

import numpy as np

EXACT_MAX = 20  # changed problems up to which the sign-flip test enumerates all 2^m flips
_CHUNK = 4_000_000  # resampled values per vectorised batch (memory stays ~32 MB)


def paired_bootstrap_ci(
    base: np.ndarray,
    candidate: np.ndarray,
    *,
    confidence: float = 0.95,
    n_boot: int = 10_000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile interval of mean(candidate - base) over problems resampled together.

    The indices are drawn as ``scipy.stats.bootstrap(..., paired=True)`` draws them
    (``default_rng(seed).integers(0, m, (n_boot, m))``), in batches that keep memory bounded.
    """
    diff = np.asarray(candidate, dtype=float) - np.asarray(base, dtype=float)
    m = diff.size
    if m == 0:
        return float("nan"), float("nan")
    if m == 1 or np.all(diff == diff[0]):
        return float(diff[0]), float(diff[0])
    rng = np.random.default_rng(seed)
    per_batch = max(1, _CHUNK // m)
    means = np.empty(n_boot)
    for start in range(0, n_boot, per_batch):
        size = min(per_batch, n_boot - start)
        idx = rng.integers(0, m, (size, m))
        means[start : start + size] = diff[idx].mean(axis=1)
    tail = (1.0 - confidence) / 2
    return float(np.percentile(means, 100 * tail)), float(np.percentile(means, 100 * (1 - tail)))


def discordant(base: np.ndarray, candidate: np.ndarray) -> tuple[int, int]:
    """(passed in base only, passed in candidate only) for 0/1 outcomes."""
    b = np.asarray(base) > 0.5
    c = np.asarray(candidate) > 0.5
    return int(np.sum(b & ~c)), int(np.sum(~b & c))


def mcnemar_exact(base: np.ndarray, candidate: np.ndarray) -> float:
    """Two-sided exact McNemar p-value: P(a Binomial(b + c, 1/2) is as far from its mean as min(b, c))."""
    lost, gained = discordant(base, candidate)
    n = lost + gained
    if n == 0 or lost == gained:
        return 1.0
    tail = sum(comb(n, i) for i in range(min(lost, gained) + 1))
    return float(min(Fraction(1), Fraction(2 * tail, 2**n)))


def sign_flip_test(
    base: np.ndarray, candidate: np.ndarray, *, n_perm: int = 20_000, seed: int = 0
) -> tuple[float, bool]:
    """Two-sided paired permutation test of mean(candidate - base) = 0; (p-value, exact?).

    Under no change each problem's difference is as likely to have either sign. Problems with no
    difference do not move the statistic and are dropped; with at most :data:`EXACT_MAX` left
    every sign pattern is enumerated, otherwise ``n_perm`` random ones give
    (1 + #{|T*| >= |T|}) / (1 + n_perm).
    """
    diff = np.asarray(candidate, dtype=float) - np.asarray(base, dtype=float)
    diff = diff[np.abs(diff) > 1e-12]
    if diff.size == 0:
        return 1.0, True
    observed = abs(diff.sum())
    tol = 1e-9 * max(1.0, observed)
    if diff.size <= EXACT_MAX:
        sums = np.zeros(1)
        for d in diff:  # all 2^m signed sums, by doubling
            sums = np.concatenate([sums + d, sums - d])
        return float(np.mean(np.abs(sums) >= observed - tol)), True
    rng = np.random.default_rng(seed)
    per_batch = max(1, _CHUNK // diff.size)
    hits = 0
    for start in range(0, n_perm, per_batch):
        size = min(per_batch, n_perm - start)
        signs = rng.integers(0, 2, (size, diff.size)) * 2 - 1
        hits += int(np.sum(np.abs(signs @ diff) >= observed - tol))
    return (1 + hits) / (1 + n_perm), False


def is_binary(*arrays: np.ndarray) -> bool:
    return all(np.all((a == 0) | (a == 1)) for a in arrays)


def paired_test(base: np.ndarray, candidate: np.ndarray, *, n_perm: int = 20_000, seed: int = 0) -> tuple[str, float]:
    """(test name, two-sided p-value): exact McNemar for 0/1 outcomes, else the sign-flip test."""
    if is_binary(base, candidate):
        lost, gained = discordant(base, candidate)
        return f"McNemar exact (lost {lost}, gained {gained})", mcnemar_exact(base, candidate)
    p, exact = sign_flip_test(base, candidate, n_perm=n_perm, seed=seed)
    return ("sign-flip permutation, exact" if exact else f"sign-flip permutation, {n_perm} draws"), p
