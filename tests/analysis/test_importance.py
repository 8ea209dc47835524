"""Per-parameter importance: |Spearman rho| for numbers, eta squared for categories."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analysis.importance import eta_squared, importance, spearman_abs


def test_a_parameter_that_orders_the_score_has_importance_one_and_noise_less() -> None:
    rng = np.random.default_rng(0)
    horizon = np.arange(1, 21)
    t = pd.DataFrame({"rollout.horizon": horizon, "lam": rng.uniform(0.1, 10, 20),
                      "score": 50 - 2.0 * horizon})  # monotone in the horizon, unrelated to lam
    table = importance(t, ["lam", "rollout.horizon"])
    assert list(table["parameter"]) == ["rollout.horizon", "lam"]
    assert table.iloc[0]["importance"] == pytest.approx(1.0) and table.iloc[0]["measure"] == "|spearman rho|"
    assert table.iloc[1]["importance"] < 0.6


def test_eta_squared_is_the_share_of_variance_between_categories() -> None:
    penalty = pd.Series(["a", "a", "b", "b"])
    assert eta_squared(penalty, pd.Series([1.0, 1.0, 3.0, 3.0])) == pytest.approx(1.0)
    assert eta_squared(penalty, pd.Series([1.0, 3.0, 1.0, 3.0])) == pytest.approx(0.0)
    # group means 1.5 and 2.5 around 2: between SS = 4 * 0.5^2 = 1; total SS = 1 + 0 + 0 + 1 = 2
    assert eta_squared(penalty, pd.Series([1.0, 2.0, 2.0, 3.0])) == pytest.approx(0.5)


def test_conditional_parameters_are_measured_where_they_exist_and_undefined_cases_are_nan() -> None:
    t = pd.DataFrame({"penalty": ["none", "none", "x", "x", "x"], "lam": [None, None, 1.0, 2.0, 3.0],
                      "score": [5.0, 5.0, 1.0, 2.0, 3.0]})
    table = importance(t, ["penalty", "lam"]).set_index("parameter")
    assert table.loc["lam", "n"] == 3 and table.loc["lam", "importance"] == pytest.approx(1.0)
    assert table.loc["penalty", "kind"] == "categorical"
    assert math.isnan(spearman_abs(pd.Series([1.0, 1.0, 1.0]), pd.Series([1.0, 2.0, 3.0])))
