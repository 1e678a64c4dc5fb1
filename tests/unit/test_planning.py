"""The planner's statistics: a textbook case, the closed form against simulation, monotonicity, the fits."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest

from ra3bench import planning as pl
from ra3bench.errors import UsageError

Z = NormalDist()


def test_two_proportion_sample_size_is_the_textbook_one():
    """Every problem at the base rate, one sample, one seed, no seed noise: two independent groups of
    Bernoulli trials, n = (z_a/2 + z_b)^2 (p1 q1 + p2 q2) / d^2 (Chow, Shao & Wang 4.2): 385 for 0.5 vs 0.6."""
    p1, p2 = 0.5, 0.6
    textbook = math.ceil((Z.inv_cdf(0.975) + Z.inv_cdf(0.8)) ** 2 * (p1 * (1 - p1) + p2 * (1 - p2)) / (p2 - p1) ** 2)
    assert textbook == 385
    population = pl.Population(p1, math.inf)
    design = pl.Design(problems=100, samples=1, seeds=1, seed_sd=0.0)
    assert pl.min_problems(population, design, p2 - p1, cap=10_000) == textbook
    assert (
        pl.power(population, pl.Design(385, 1, 1, 0.0), 0.1)
        >= 0.8
        > pl.power(population, pl.Design(384, 1, 1, 0.0), 0.1)
    )
    # too few problems in the suite: said, not a wrong number
    assert pl.min_problems(population, design, p2 - p1, cap=378) is None


def test_variance_without_spread_or_seeds_is_binomial():
    population = pl.Population(0.3, math.inf)
    design = pl.Design(problems=80, samples=5, seeds=2, seed_sd=0.0)
    v = pl.variance(population, design, 0.1)
    assert v.problems == pytest.approx(0, abs=1e-15) and v.seeds == 0 and v.seed_problem == pytest.approx(0, abs=1e-15)
    assert v.sampling == pytest.approx((0.3 * 0.7 + 0.4 * 0.6) / (2 * 80 * 5), rel=1e-9)


def test_an_arm_has_the_asked_mean_and_seed_sd():
    population = pl.Population(0.2, 0.5)
    arm = pl.arm(population, 0.25, 0.02)
    assert pl._mean_rate(population, arm.shift, arm.seed_scale) == pytest.approx(0.25, abs=1e-8)
    assert math.sqrt(pl._seed_var(population, arm.shift, arm.seed_scale)) == pytest.approx(0.02, rel=1e-6)
    with pytest.raises(UsageError, match="seed sd"):
        pl.arm(pl.Population(0.02, 0.2), 0.02, 0.3)


DESIGNS = [
    (pl.Population(0.3, 1.0), pl.Design(problems=100, samples=4, seeds=2, seed_sd=0.01), 0.05),
    (pl.Population(0.1, 0.3), pl.Design(problems=164, samples=10, seeds=1, seed_sd=0.02), 0.06),
    (pl.Population(0.5, math.inf), pl.Design(problems=60, samples=1, seeds=1, seed_sd=0.0), 0.15),
    (pl.Population(0.6, 3.0), pl.Design(problems=40, samples=8, seeds=3, seed_sd=0.015), 0.0),
    # few problems, a large seed sd: a seed moves problems unequally (a fifth of the variance)
    (pl.Population(0.3, 0.5), pl.Design(problems=8, samples=50, seeds=1, seed_sd=0.06), 0.05),
]


@pytest.mark.parametrize(("population", "design", "effect"), DESIGNS)
def test_closed_form_variance_matches_simulation(population, design, effect):
    """The same model drawn 6000 times: D's mean is the effect and its sd the closed form's (sd of an sd
    estimate from 6000 draws: about 1 %)."""
    sim = pl.simulate(population, design, effect, 6000, seed=1)
    se = pl.variance(population, design, effect).se
    assert sim.sd == pytest.approx(se, rel=0.05)
    assert abs(sim.mean - effect) < 4 * se / math.sqrt(6000)


def test_power_at_the_mde_is_the_asked_power_where_the_normal_approximation_holds():
    population = pl.Population(0.4, 2.0)
    design = pl.Design(problems=200, samples=4, seeds=2, seed_sd=0.01)
    mde = pl.mde(population, design)
    assert mde is not None and pl.power(population, design, mde) == pytest.approx(0.8, abs=1e-4)
    sim = pl.simulate(population, design, mde, 8000, seed=2)
    assert abs(sim.power - 0.8) < 3 * sim.power_se + 0.01
    simulated = pl.simulated_mde(population, design, 2000, seed=3)
    assert simulated == pytest.approx(mde, rel=0.08)


def test_more_problems_samples_seeds_detect_smaller_effects():
    population = pl.Population(0.2, 1.0)
    base = pl.Design(problems=50, samples=2, seeds=1, seed_sd=0.01)
    mde = pl.mde(population, base)
    for change in ({"problems": 200}, {"samples": 16}, {"seeds": 4}, {"seed_sd": 0.0}):
        assert pl.mde(population, pl.Design(**{**base.__dict__, **change})) < mde, change
    assert pl.mde(population, pl.Design(**{**base.__dict__, "seed_sd": 0.03})) > mde
    powers = [pl.power(population, base, d) for d in (0.02, 0.05, 0.1, 0.2)]
    assert powers == sorted(powers) and powers[0] > base.alpha


def test_seeds_set_a_floor_that_samples_cannot_break():
    """With every problem and endless samples, only the seed term is left: MDE = (z + z_b) sqrt(2 sd^2 / S)."""
    population = pl.Population(0.3, 1.0)
    design = pl.Design(problems=1_000_000, samples=100_000, seeds=1, seed_sd=0.02)
    floor = (Z.inv_cdf(0.975) + Z.inv_cdf(0.8)) * math.sqrt(2 * 0.02**2)
    assert pl.mde(population, design) == pytest.approx(floor, rel=0.02)
    small = pl.Design(problems=164, samples=1, seeds=1, seed_sd=0.02)
    assert pl.min_samples(population, small, 0.05) is None  # below the floor of one seed
    seeds = pl.min_seeds(population, small, 0.05)
    assert seeds is not None and seeds > 1
    assert pl.power(population, pl.Design(164, 1, seeds, 0.02), 0.05) >= 0.8


def test_smallest_problems_and_samples_are_the_smallest():
    population = pl.Population(0.25, 1.0)
    design = pl.Design(problems=100, samples=4, seeds=2, seed_sd=0.005)
    problems = pl.min_problems(population, design, 0.06, cap=2000)
    assert problems is not None
    ok = pl.power(population, pl.Design(problems, 4, 2, 0.005), 0.06)
    short = pl.power(population, pl.Design(problems - 1, 4, 2, 0.005), 0.06)
    assert ok >= 0.8 > short
    samples = pl.min_samples(population, pl.Design(400, 1, 2, 0.005), 0.06)
    assert samples is not None
    assert pl.power(population, pl.Design(400, samples, 2, 0.005), 0.06) >= 0.8
    if samples > 1:
        assert pl.power(population, pl.Design(400, samples - 1, 2, 0.005), 0.06) < 0.8


def test_no_effect_is_detectable_when_power_cannot_be_reached():
    population = pl.Population(0.9, 1.0)
    assert pl.mde(population, pl.Design(problems=2, samples=1, seeds=1, seed_sd=0.03)) is None


def test_beta_binomial_fit_recovers_mean_and_concentration():
    rng = np.random.default_rng(0)
    rates = rng.beta(0.3 * 1.5, 0.7 * 1.5, 3000)
    n = np.full(3000, 10)
    fit = pl.fit_population(n, rng.binomial(n, rates))
    assert fit.mean == pytest.approx(0.3, abs=0.02)
    assert fit.concentration == pytest.approx(1.5, rel=0.15)
    one = pl.fit_population(np.ones(50, int), rng.binomial(1, 0.3, 50))
    assert one.concentration is None and "one sample" in one.note
    none = pl.fit_population(np.full(20, 4), np.zeros(20, int))
    assert none.mean == 0 and none.concentration is None and "no sample passed" in none.note
    same = pl.fit_population(np.full(2000, 10), rng.binomial(10, 0.4, 2000))  # no spread at all
    assert same.concentration > 100


def test_seed_sd_is_estimated_net_of_sampling_noise():
    rng = np.random.default_rng(5)
    P, n, runs = 400, 10, 40
    rates = rng.beta(1.0, 2.0, P)
    logits = np.log(rates / (1 - rates))

    def runs_with(sd: float) -> tuple[list, list]:
        samples, passed = [], []
        for _ in range(runs):
            shifted = 1 / (1 + np.exp(-(logits + sd * rng.standard_normal())))
            samples.append(np.full(P, n))
            passed.append(rng.binomial(n, shifted))
        return samples, passed

    noisy = pl.seed_sd_from_runs(*runs_with(0.3))  # logit offsets of sd 0.3: a mean sd of several pp
    quiet = pl.seed_sd_from_runs(*runs_with(0.0))
    assert noisy is not None and quiet is not None
    assert noisy > 0.02 and quiet < 0.006
    assert pl.seed_sd_from_runs([np.full(P, 1)] * 2, [np.zeros(P)] * 2) is None  # n = 1: not separable


def test_bad_values_are_one_clear_error():
    with pytest.raises(UsageError, match="base rate"):
        pl.Population(0.0)
    with pytest.raises(UsageError, match="concentration"):
        pl.Population(0.3, 0.0)
    with pytest.raises(UsageError, match=r"problems must be at least 1.*samples per problem"):
        pl.Design(problems=0, samples=0)
    with pytest.raises(UsageError, match="at least 2"):
        pl.simulate(pl.Population(0.3), pl.Design(10, 1), 0.1, 1)
