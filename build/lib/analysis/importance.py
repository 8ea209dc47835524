"""Per-parameter importance of a sweep's searched parameters, without a surrogate model.

A cheap stand-in for sensitivity analysis that works with a few dozen trials and no extra dependencies:

- numeric parameter: ``|Spearman rho|`` between the parameter and the final score (monotone association,
  insensitive to log or linear scale);
- categorical parameter: ``eta^2`` = between-group sum of squares / total sum of squares of the score
  (the share of score variance the category explains; a one-way ANOVA effect size).

Both lie in [0, 1]. Conditional parameters (a ``lam`` that exists on some branches only) are measured over
the trials where they exist. Neither accounts for interactions; with few trials treat them as hints.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from scipy import stats

#: Smallest number of trials (with the parameter set) a measure is computed from.
MIN_TRIALS = 3


def spearman_abs(values: pd.Series, score: pd.Series) -> float:
    """``|rho|`` of numeric values against the score; NaN if either is constant or too few."""
    x, y = values.astype(float).to_numpy(), score.astype(float).to_numpy()
    if len(x) < MIN_TRIALS or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(abs(stats.spearmanr(x, y).statistic))


def eta_squared(values: pd.Series, score: pd.Series) -> float:
    """Share of the score's variance explained by the category; NaN with one category or too few."""
    y = score.astype(float).to_numpy()
    groups = values.astype(str).to_numpy()
    if len(y) < MIN_TRIALS or len(set(groups)) < 2:
        return float("nan")
    total = float(((y - y.mean()) ** 2).sum())
    if total == 0:
        return float("nan")
    between = sum(float((groups == g).sum()) * (y[groups == g].mean() - y.mean()) ** 2 for g in set(groups))
    return between / total


#: Parameter kind -> (measure name, function).
MEASURES: dict[str, tuple[str, Callable[[pd.Series, pd.Series], float]]] = {
    "numeric": ("|spearman rho|", spearman_abs),
    "categorical": ("eta^2", eta_squared),
}


def is_numeric(values: pd.Series) -> bool:
    present = values.dropna()
    return len(present) > 0 and all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool)
                                    for v in present)


def importance(trials: pd.DataFrame, params: list[str], score: str = "score") -> pd.DataFrame:
    """One row per parameter: parameter, kind, measure, importance (NaN when undefined), n trials; sorted
    most important first."""
    rows = []
    for param in params:
        if param not in trials.columns:
            continue
        present = trials[trials[param].notna() & np.isfinite(trials[score].astype(float))]
        kind = "numeric" if is_numeric(present[param]) else "categorical"
        measure, fn = MEASURES[kind]
        rows.append({"parameter": param, "kind": kind, "measure": measure,
                     "importance": fn(present[param], present[score]), "n": len(present)})
    table = pd.DataFrame(rows, columns=["parameter", "kind", "measure", "importance", "n"])
    return table.sort_values("importance", ascending=False, na_position="last", kind="stable").reset_index(drop=True)
