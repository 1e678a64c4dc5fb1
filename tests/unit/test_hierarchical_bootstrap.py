"""The two-stage bootstrap over seeds and problems (`ra3bench compare` with several seeds per side)."""

from __future__ import annotations

import numpy as np
import pytest

from ra3bench.report.hierarchical import hierarchical_bootstrap_ci, seed_effects
from ra3bench.report.paired import paired_bootstrap_ci


def experiment(
    rng: np.random.Generator,
    *,
    seeds: int,
    problems: int = 50,
    effect: float = 0.04,
    seed_sd: float = 0.0,
    interaction_sd: float = 0.03,
    noise_sd: float = 0.05,
    n: int = 4,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-problem pass rates (seeds x problems) of methods A and B, B better by ``effect`` on average.

    A problem has a difficulty both methods share, a method-by-problem interaction, each training run
    a seed offset, each (run, problem) some noise; the pass rate is then measured with n samples.
    """
    difficulty = rng.uniform(0.15, 0.8, problems)

    def method(shift: float) -> np.ndarray:
        rate = difficulty + shift + rng.normal(0, interaction_sd, problems)
        rate = rate[None, :] + rng.normal(0, seed_sd, (seeds, 1)) + rng.normal(0, noise_sd, (seeds, problems))
        return rng.binomial(n, np.clip(rate, 0, 1)) / n

    return method(0.0), method(effect)


def test_one_run_per_method_is_the_paired_problem_bootstrap_draw_for_draw():
    a, b = experiment(np.random.default_rng(0), seeds=1)
    result = hierarchical_bootstrap_ci(a, b, n_boot=3000, seed=7)
    assert (result.ci_low, result.ci_high) == paired_bootstrap_ci(a[0], b[0], n_boot=3000, seed=7)
    assert result.delta == pytest.approx(b.mean() - a.mean())
    assert result.conditional_on_seed and (result.n_seeds_a, result.n_seeds_b, result.n_problems) == (1, 1, 50)
    assert hierarchical_bootstrap_ci(a[0], b[0], n_boot=3000, seed=7) == result  # 1-D: one run


def test_zero_seed_variance_reduces_to_the_paired_bootstrap_of_the_seed_means():
    a, b = experiment(np.random.default_rng(1), seeds=1)
    same_a, same_b = np.repeat(a, 4, axis=0), np.repeat(b, 3, axis=0)  # 4 and 3 seeds that agree exactly
    result = hierarchical_bootstrap_ci(same_a, same_b, n_boot=3000, seed=3)
    assert (result.ci_low, result.ci_high) == paired_bootstrap_ci(a[0], b[0], n_boot=3000, seed=3)
    assert (result.seed_sd_a, result.seed_sd_b) == (0.0, 0.0) and not result.conditional_on_seed


def test_seeds_that_differ_only_by_noise_add_about_nothing():
    """Runs whose means differ by no more than their per-problem noise explains: no seed component."""
    rng = np.random.default_rng(2)
    a, b = experiment(rng, seeds=5, seed_sd=0.0, noise_sd=0.0, interaction_sd=0.05)
    effects, sd = seed_effects(a)
    assert sd < 0.01 and np.all(np.abs(effects) < 0.01)
    with_seeds = hierarchical_bootstrap_ci(a, b, n_boot=4000)
    problems_only = paired_bootstrap_ci(a.mean(axis=0), b.mean(axis=0), n_boot=4000)
    assert with_seeds.ci_high - with_seeds.ci_low == pytest.approx(problems_only[1] - problems_only[0], rel=0.1)


@pytest.mark.parametrize("seed_sd", [0.02, 0.05, 0.1])
def test_seed_variance_widens_the_interval_as_much_as_it_should(seed_sd):
    """Eight seeds per method that differ by an offset each (a seed moves every problem of its run):
    the seed SD is found exactly, and the half-width grows from the problems' alone to about
    sqrt(problems^2 + (t_df * seed_sd * sqrt(1/8 + 1/8))^2), df = 14 (Welch-Satterthwaite)."""
    stats = pytest.importorskip("scipy.stats")
    a, b = experiment(np.random.default_rng(4), seeds=1)
    same_a, same_b = np.repeat(a, 8, axis=0), np.repeat(b, 8, axis=0)
    offsets = np.linspace(-1.5, 1.5, 8) * seed_sd
    base = hierarchical_bootstrap_ci(same_a, same_b, n_boot=20_000)
    spread = hierarchical_bootstrap_ci(same_a + offsets[:, None], same_b + offsets[::-1, None], n_boot=20_000)
    assert spread.delta == pytest.approx(base.delta)  # offsets that sum to zero move no mean
    sd = float(np.std(offsets, ddof=1))
    assert (spread.seed_sd_a, spread.seed_sd_b) == pytest.approx((sd, sd))
    seed_half = stats.t.ppf(0.975, 14) * sd * np.sqrt(2 / 8)
    expected_half = np.hypot((base.ci_high - base.ci_low) / 2, seed_half)
    assert (spread.ci_high - spread.ci_low) / 2 == pytest.approx(expected_half, rel=0.1)


def test_coverage_of_the_true_effect_in_simulated_experiments():
    """200 experiments (4 seeds per method, 50 problems, n = 4, real seed variance): the 95% interval
    covers the true effect in roughly 90-99% of them. The paired interval of the seed means, which
    holds the runs fixed, covers it far less often: seed variance is what it leaves out."""
    rng = np.random.default_rng(2024)
    effect, covered, covered_paired = 0.04, 0, 0
    for i in range(200):
        a, b = experiment(rng, seeds=4, effect=effect, seed_sd=0.04)
        result = hierarchical_bootstrap_ci(a, b, n_boot=1000, seed=i)
        covered += result.ci_low <= effect <= result.ci_high
        low, high = paired_bootstrap_ci(a.mean(axis=0), b.mean(axis=0), n_boot=1000, seed=i)
        covered_paired += low <= effect <= high
    assert 0.90 * 200 <= covered <= 0.99 * 200, covered
    assert covered_paired < 0.85 * 200, covered_paired


def test_p_value_agrees_with_the_interval():
    rng = np.random.default_rng(5)
    a, b = experiment(rng, seeds=3, effect=0.15, seed_sd=0.02)
    clear = hierarchical_bootstrap_ci(a, b, n_boot=4000)
    assert clear.ci_low > 0 and clear.p_value < 0.05
    a, b = experiment(rng, seeds=3, effect=0.0, seed_sd=0.05)
    unclear = hierarchical_bootstrap_ci(a, b, n_boot=4000)
    assert (unclear.ci_low < 0 < unclear.ci_high) == (unclear.p_value >= 0.05)


def test_degenerate_inputs():
    same = np.array([[0.5, 0.25, 1.0], [0.5, 0.25, 1.0]])
    result = hierarchical_bootstrap_ci(same, same)
    assert (result.delta, result.ci_low, result.ci_high, result.p_value) == (0.0, 0.0, 0.0, 1.0)
    shifted = hierarchical_bootstrap_ci(same, same + 0.25)  # every problem, every seed, a quarter better
    assert (shifted.ci_low, shifted.ci_high) == pytest.approx((0.25, 0.25)) and shifted.p_value < 0.001
    one = hierarchical_bootstrap_ci([[0.0], [1.0]], [[1.0], [1.0]])  # one problem: only seeds vary
    assert one.delta == 0.5 and one.n_problems == 1 and one.ci_high >= one.ci_low
    empty = hierarchical_bootstrap_ci(np.zeros((2, 0)), np.zeros((3, 0)))
    assert np.isnan(empty.delta) and np.isnan(empty.ci_low) and empty.n_problems == 0
    with pytest.raises(ValueError, match="different numbers of problems"):
        hierarchical_bootstrap_ci(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="at least one seed"):
        hierarchical_bootstrap_ci(np.zeros((0, 3)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="finite"):
        hierarchical_bootstrap_ci([[0.5, np.nan]], [[0.5, 0.5]])
