"""The paired statistics of `ra3bench compare`, checked against scipy's independent implementations."""

from __future__ import annotations

import numpy as np
import pytest

from ra3bench.report.paired import (
    discordant,
    mcnemar_exact,
    paired_bootstrap_ci,
    paired_test,
    sign_flip_test,
)

stats = pytest.importorskip("scipy.stats")


def _mean_diff(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    return (b - a).mean(axis=axis)


def _outcomes(seed: int, m: int = 164, lost: int = 12, gained: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """0/1 per-problem outcomes of two runs that differ on a few problems."""
    rng = np.random.default_rng(seed)
    base = (rng.random(m) < 0.7).astype(float)
    cand = base.copy()
    passed, failed = np.flatnonzero(base == 1), np.flatnonzero(base == 0)
    cand[rng.choice(passed, lost, replace=False)] = 0
    cand[rng.choice(failed, gained, replace=False)] = 1
    return base, cand


def _rates(seed: int, m: int, n: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Per-problem pass rates c/n of two runs with n samples each (n = 4: sums exact in floating point)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, n + 1, m) / n
    cand = np.clip(base + rng.integers(-1, 2, m) / n, 0, 1)
    return base, cand


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_paired_bootstrap_ci_is_scipys_paired_percentile_bootstrap(seed):
    base, cand = _outcomes(seed)
    ours = paired_bootstrap_ci(base, cand, n_boot=10_000, seed=seed)
    theirs = stats.bootstrap(
        (base, cand),
        _mean_diff,
        paired=True,
        vectorized=True,
        n_resamples=10_000,
        method="percentile",
        confidence_level=0.95,
        random_state=np.random.default_rng(seed),
    ).confidence_interval
    # same resampling scheme and seed: the same interval (a tolerance in case scipy batches differently)
    assert ours[0] == pytest.approx(theirs.low, abs=0.01)
    assert ours[1] == pytest.approx(theirs.high, abs=0.01)
    assert ours[0] < (cand - base).mean() < ours[1]


def test_paired_bootstrap_ci_on_pass_rates_matches_scipy_and_is_reproducible():
    base, cand = _rates(5, 300)
    ours = paired_bootstrap_ci(base, cand, n_boot=10_000, seed=7)
    assert ours == paired_bootstrap_ci(base, cand, n_boot=10_000, seed=7)
    theirs = stats.bootstrap(
        (base, cand), _mean_diff, paired=True, vectorized=True, n_resamples=10_000, method="percentile",
        random_state=np.random.default_rng(7),
    ).confidence_interval  # fmt: skip
    assert ours == pytest.approx((theirs.low, theirs.high), abs=0.005)


def test_paired_bootstrap_ci_degenerate_cases():
    same = np.array([1.0, 0.0, 1.0])
    assert paired_bootstrap_ci(same, same) == (0.0, 0.0)
    assert paired_bootstrap_ci(np.array([1.0]), np.array([0.0])) == (-1.0, -1.0)


@pytest.mark.parametrize(("seed", "lost", "gained"), [(0, 12, 3), (1, 7, 0), (2, 5, 5), (3, 1, 0), (4, 40, 25)])
def test_mcnemar_exact_is_a_two_sided_binomial_test_of_the_discordant_pairs(seed, lost, gained):
    base, cand = _outcomes(seed, lost=lost, gained=gained)
    b, c = discordant(base, cand)
    assert (b, c) == (lost, gained)
    assert mcnemar_exact(base, cand) == pytest.approx(stats.binomtest(c, b + c, 0.5).pvalue, rel=1e-12)
    name, p = paired_test(base, cand)
    assert name.startswith("McNemar exact") and p == mcnemar_exact(base, cand)


def test_mcnemar_without_discordant_pairs_is_one():
    base = np.array([1.0, 0.0, 1.0])
    assert mcnemar_exact(base, base) == 1.0


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_sign_flip_test_exact_equals_scipys_exact_paired_permutation_test(seed):
    base, cand = _rates(seed, 14)
    p, exact = sign_flip_test(base, cand)
    assert exact
    theirs = stats.permutation_test(
        (base, cand), _mean_diff, permutation_type="samples", vectorized=True, n_resamples=np.inf
    ).pvalue
    assert p == pytest.approx(theirs, rel=1e-9)


def test_sign_flip_test_monte_carlo_agrees_with_scipy_within_its_error():
    base, cand = _rates(12, 250)
    cand = np.clip(cand - (np.arange(250) % 7 == 0) * 0.25, 0, 1)  # a small drop: p in the informative range
    p, exact = sign_flip_test(base, cand, n_perm=20_000, seed=3)
    assert not exact
    theirs = stats.permutation_test(
        (base, cand), _mean_diff, permutation_type="samples", vectorized=True, n_resamples=20_000, random_state=4
    ).pvalue
    assert 0.001 < theirs < 0.5
    assert p == pytest.approx(theirs, abs=4 * np.sqrt(theirs * (1 - theirs) / 20_000) + 1e-3)
    name, p_again = paired_test(base, cand, n_perm=20_000, seed=3)
    assert name.startswith("sign-flip") and p_again == p


def test_sign_flip_test_on_0_1_outcomes_is_mcnemar():
    base, cand = _outcomes(8, m=60, lost=9, gained=2)
    p, exact = sign_flip_test(base, cand)
    assert exact and p == pytest.approx(mcnemar_exact(base, cand), rel=1e-12)


def _run(outcomes: dict[str, list[bool]]):
    """An in-memory two-group run: each task's samples pass both groups or neither."""
    from pathlib import Path

    from ra3bench.report.base import EvalRun

    verdicts = [
        {"task_id": t, "sample_index": i, "status": "pass" if ok else "fail",
         "groups": {"base": "pass" if ok else "fail", "plus": "pass" if ok else "fail"}}
        for t, samples in outcomes.items() for i, ok in enumerate(samples)
    ]  # fmt: skip
    manifest = {"suite": {"suite": "mbpp+", "suite_version": "v", "data_sha256": "x", "groups": ["base", "plus"]}}
    summary = {"pass_at_k": {"base": {"1": 0, "4": 0}, "plus": {"1": 0, "4": 0}}}
    return EvalRun(Path("."), manifest, summary, verdicts)


def test_several_samples_per_problem_use_pass_rates_and_the_sign_flip_test():
    from ra3bench.report.compare import compare_pair, differences

    rng = np.random.default_rng(0)
    base = {f"Mbpp/{i}": list(rng.random(4) < 0.6) for i in range(40)}
    cand = {t: list(s) for t, s in base.items()}
    for i in range(0, 40, 4):  # every 4th problem loses its passing samples
        cand[f"Mbpp/{i}"] = [False] * 4
    worse = sorted((t for t in base if any(base[t]) and not any(cand[t])), key=lambda t: int(t.split("/")[1]))
    b, c = _run(base), _run(cand)
    assert differences(b, c) == []
    rows = compare_pair(b, c, n_boot=2000)
    assert [(r.group, r.k) for r in rows] == [("base", 1), ("base", 4), ("plus", 1), ("plus", 4)]
    pass1 = rows[0]
    assert pass1.test.startswith("sign-flip") and pass1.lost == worse and pass1.gained == []
    x = np.array([np.mean(base[t]) for t in sorted(base, key=lambda t: int(t.split("/")[1]))])
    y = np.array([np.mean(cand[t]) for t in sorted(cand, key=lambda t: int(t.split("/")[1]))])
    assert pass1.delta == pytest.approx(y.mean() - x.mean())
    assert pass1.p_value == pytest.approx(sign_flip_test(x, y)[0])
    assert pass1.verdict == "regression" and pass1.fails
    assert rows[1].test.startswith("McNemar")  # pass@4 of 4 samples: 0/1 per problem
    assert differences(b, _run({t: s[:2] for t, s in base.items()})) == [
        "samples per problem (n) differs (base 4, candidate 2)"
    ]
