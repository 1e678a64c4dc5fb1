from itertools import combinations
from math import comb

import numpy as np
import pytest

from ra3bench.metrics import bootstrap_ci, ks_for, pass_at_k, pass_at_k_with_ci


@pytest.mark.parametrize(
    ("n", "c", "k"), [(1, 0, 1), (1, 1, 1), (10, 3, 1), (10, 3, 5), (20, 0, 10), (5, 5, 5), (7, 2, 6)]
)
def test_pass_at_k_equals_the_combinatorial_definition(n, c, k):
    assert pass_at_k(n, c, k) == pytest.approx(1 - comb(n - c, k) / comb(n, k))


def test_pass_at_k_is_the_probability_that_a_k_subset_holds_a_pass():
    outcomes = [1, 0, 0, 1, 0, 0]
    subsets = list(combinations(outcomes, 3))
    brute = sum(1 for s in subsets if any(s)) / len(subsets)
    assert pass_at_k(6, 2, 3) == pytest.approx(brute)


def test_pass_at_k_rejects_k_above_n():
    with pytest.raises(ValueError):
        pass_at_k(3, 1, 4)


def test_ks_for_keeps_every_k_up_to_the_smallest_n():
    counts = {"a": (5, 1), "b": (3, 0)}
    assert ks_for(counts) == [1, 2, 3]
    assert ks_for(counts, [1, 10]) == [1]


def test_mean_and_interval_over_problems():
    counts = {f"t{i}": (1, int(i % 4 == 0)) for i in range(40)}
    result = pass_at_k_with_ci(counts, 1)
    assert result.value == pytest.approx(0.25)
    assert result.ci_low < 0.25 < result.ci_high
    assert result.n_problems == 40


def test_bootstrap_interval_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    values = np.random.default_rng(1).integers(0, 2, size=200).astype(float)
    low, high = bootstrap_ci(values, n_boot=20000, seed=3)
    reference = stats.bootstrap((values,), np.mean, n_resamples=20000, method="percentile", random_state=3)
    assert low == pytest.approx(reference.confidence_interval.low, abs=0.01)
    assert high == pytest.approx(reference.confidence_interval.high, abs=0.01)


def test_interval_does_not_depend_on_the_order_of_problems():
    counts = {f"t{i:03d}": (1, int(i % 3 == 0)) for i in range(60)}
    shuffled = dict(reversed(list(counts.items())))
    assert pass_at_k_with_ci(counts, 1) == pass_at_k_with_ci(shuffled, 1)
