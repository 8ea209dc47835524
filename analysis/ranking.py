"""How well one score ranks a set of trials by another: an offline estimate against the simulator's score
(``analysis.ope``), or a cheap budget's score against a larger budget's (``analysis.confirm``).

- Spearman's rank correlation, with a bootstrap 95% interval (trials resampled with replacement);
- regret@k: the best reference score among all trials minus the best reference score among the k trials
  the ranking score puts highest (0: its top k hold the best trial), in the scores' own units.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from analysis.compare import BOOTSTRAP_SAMPLES, CONFIDENCE


@dataclass(frozen=True)
class RankAgreement:
    """One ranking score against the reference score of the same trials."""

    n: int
    """Trials with both scores finite."""
    spearman: float
    spearman_low: float
    spearman_high: float
    """Bootstrap percentile interval of Spearman's rho (:data:`analysis.compare.CONFIDENCE`)."""
    regret: dict[int, float]
    """k -> regret@k."""


def regret_at(true: Sequence[float], estimate: Sequence[float], k: int) -> float:
    """Best ``true`` score minus the best ``true`` score among the ``k`` trials ``estimate`` ranks highest
    (ties kept in the given order)."""
    t, e = np.asarray(true, dtype=float), np.asarray(estimate, dtype=float)
    top = np.argsort(-e, kind="stable")[:k]
    return float(t.max() - t[top].max())


def agreement(true: Sequence[float], estimate: Sequence[float], ks: Sequence[int] = (1, 3),
              samples: int = BOOTSTRAP_SAMPLES, seed: int = 0) -> RankAgreement:
    """Spearman's rho with its bootstrap interval and regret@k of ``estimate`` against ``true`` (same
    trials, same order; pairs with a non-finite value are left out; NaN below 3 trials)."""
    t, e = np.asarray(true, dtype=float), np.asarray(estimate, dtype=float)
    keep = np.isfinite(t) & np.isfinite(e)
    t, e = t[keep], e[keep]
    n = len(t)
    if n < 3:
        return RankAgreement(n, math.nan, math.nan, math.nan, {k: math.nan for k in ks})
    rho = float(stats.spearmanr(t, e).statistic)
    rng = np.random.default_rng(seed)
    boot = []
    for _ in range(samples):
        idx = rng.integers(0, n, n)
        if np.ptp(t[idx]) > 0 and np.ptp(e[idx]) > 0:  # a resample of one repeated trial has no ranking
            boot.append(stats.spearmanr(t[idx], e[idx]).statistic)
    alpha = (1 - CONFIDENCE) / 2
    low, high = (np.quantile(boot, [alpha, 1 - alpha]) if boot else (math.nan, math.nan))
    return RankAgreement(n, rho, float(low), float(high), {k: regret_at(t, e, min(k, n)) for k in ks})
