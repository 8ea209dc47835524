"""The agreement of an offline estimate with the true scores: rank correlation with its bootstrap interval,
and regret@k, on cases whose answers are known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analysis.ope import agreement, regret_at

TRUE = [1.0, 5.0, 3.0, 9.0, 7.0, 2.0]


def test_a_perfect_estimate_ranks_exactly_and_loses_nothing() -> None:
    out = agreement(TRUE, [10 * s + 4 for s in TRUE], samples=500)
    assert out.n == 6 and out.spearman == pytest.approx(1.0)
    assert out.spearman_low == pytest.approx(1.0) and out.regret == {1: 0.0, 3: 0.0}


def test_a_reversed_estimate_picks_the_worst() -> None:
    out = agreement(TRUE, [-s for s in TRUE], samples=500)
    assert out.spearman == pytest.approx(-1.0)
    assert out.regret[1] == 9.0 - 1.0 and out.regret[3] == 9.0 - 3.0  # its top 3 are the trials scoring 1, 2, 3


def test_regret_counts_the_best_of_the_top_k() -> None:
    estimate = [0.0, 8.0, 9.0, 1.0, 7.0, 0.5]  # ranks trial 2 (true 3), then 1 (true 5), then 4 (true 7)
    assert regret_at(TRUE, estimate, 1) == 6.0 and regret_at(TRUE, estimate, 2) == 4.0
    assert regret_at(TRUE, estimate, 3) == 2.0 and regret_at(TRUE, estimate, 6) == 0.0


def test_noise_widens_the_interval_and_missing_values_are_left_out() -> None:
    rng = np.random.default_rng(0)
    true = rng.normal(size=40)
    noisy = true + rng.normal(scale=1.0, size=40)
    noisy[3] = math.nan
    out = agreement(true, noisy, samples=2000, seed=1)
    assert out.n == 39 and 0.3 < out.spearman < 0.9
    assert out.spearman_low < out.spearman < out.spearman_high and out.spearman_high - out.spearman_low > 0.1
    assert agreement(true, noisy, samples=2000, seed=1) == out  # the same seed, the same interval
    assert math.isnan(agreement([1.0, 2.0], [2.0, 1.0]).spearman)  # too few trials to rank
