"""How far an offline estimate of a policy's return can be trusted to choose among a sweep's trials: the
measures of Paine et al. (2020) and the DOPE benchmark (Fu et al. 2021), against the simulator's score.

- Spearman's rank correlation between the estimate and the true score over the finished trials, with a
  bootstrap 95% interval (trials resampled with replacement);
- regret@k: the best true score among all trials minus the best true score among the estimator's top k
  (0: its top k hold the best trial), in the score's own units (D4RL-normalised).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

BOOTSTRAP_SAMPLES = 10_000
CONFIDENCE = 0.95


@dataclass(frozen=True)
class EstimatorAgreement:
    """One estimator against the true scores of the same trials."""

    n: int
    """Trials with both a true score and an estimate."""
    spearman: float
    spearman_low: float
    spearman_high: float
    """Bootstrap percentile interval of Spearman's rho (:data:`CONFIDENCE`)."""
    regret: dict[int, float]
    """k -> regret@k."""


def regret_at(true: Sequence[float], estimate: Sequence[float], k: int) -> float:
    """Best true score minus the best true score among the ``k`` trials the estimate ranks highest."""
    t, e = np.asarray(true, dtype=float), np.asarray(estimate, dtype=float)
    top = np.argsort(-e, kind="stable")[:k]
    return float(t.max() - t[top].max())


def agreement(true: Sequence[float], estimate: Sequence[float], ks: Sequence[int] = (1, 3),
              samples: int = BOOTSTRAP_SAMPLES, seed: int = 0) -> EstimatorAgreement:
    """Spearman's rho with its bootstrap interval and regret@k of ``estimate`` against ``true`` (same
    trials, same order; pairs with a non-finite value are left out)."""
    t, e = np.asarray(true, dtype=float), np.asarray(estimate, dtype=float)
    keep = np.isfinite(t) & np.isfinite(e)
    t, e = t[keep], e[keep]
    n = len(t)
    if n < 3:
        return EstimatorAgreement(n, math.nan, math.nan, math.nan, {k: math.nan for k in ks})
    rho = float(stats.spearmanr(t, e).statistic)
    rng = np.random.default_rng(seed)
    boot = []
    for _ in range(samples):
        idx = rng.integers(0, n, n)
        if np.ptp(t[idx]) > 0 and np.ptp(e[idx]) > 0:  # a resample of one repeated trial has no ranking
            boot.append(stats.spearmanr(t[idx], e[idx]).statistic)
    alpha = (1 - CONFIDENCE) / 2
    low, high = (np.quantile(boot, [alpha, 1 - alpha]) if boot else (math.nan, math.nan))
    return EstimatorAgreement(n, rho, float(low), float(high), {k: regret_at(t, e, min(k, n)) for k in ks})
