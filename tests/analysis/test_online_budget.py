"""The UCB bandit over candidate configurations (Unifloral's online-budget protocol), on episodes whose
truth is known."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.online_budget import ucb_curve


def test_the_choice_improves_with_episodes_and_reaches_the_best_candidate() -> None:
    rng = np.random.default_rng(1)
    episodes = {"a": rng.normal(10, 8, 30), "b": rng.normal(20, 8, 30), "c": rng.normal(12, 8, 30)}
    result = ucb_curve(episodes, max_pulls=150, repeats=300, seed=0)
    true = result.true_scores
    best, mean_of_all = max(true.values()), float(np.mean(list(true.values())))
    curve = result.curve.set_index("pulls")["expected"]
    assert result.k == 3 and list(result.curve["pulls"])[:3] == [1, 2, 3]
    # After one episode one candidate (a random one of the subset) has been seen: the choice is random.
    assert curve[1] == pytest.approx(mean_of_all, abs=1.0)
    assert mean_of_all < curve[150] <= best + 1e-9 and curve[150] > curve[3]
    assert curve[150] == pytest.approx(best, abs=0.5), "with enough episodes the best candidate is chosen"
    low, high = result.curve["low"].to_numpy(), result.curve["high"].to_numpy()
    assert np.all(high >= low) and low.min() >= min(true.values()) and high.max() <= best


def test_subsets_of_k_candidates_and_the_same_seed_give_the_same_curve() -> None:
    episodes = {name: np.full(5, score) for name, score in (("a", 1.0), ("b", 2.0), ("c", 3.0), ("d", 4.0))}
    one = ucb_curve(episodes, k=2, max_pulls=20, repeats=200, seed=3)
    two = ucb_curve(episodes, k=2, max_pulls=20, repeats=200, seed=3)
    assert one.curve.equals(two.curve) and one.k == 2
    # Noise-free episodes: after both candidates are seen the better one of the pair is chosen; over random
    # pairs of {1, 2, 3, 4} that is 3.33 on average (the max of a random pair).
    assert one.curve["expected"].iloc[-1] == pytest.approx(10 / 3, abs=0.15)


def test_no_episodes_is_an_error() -> None:
    with pytest.raises(ValueError, match="no candidate has a recorded episode"):
        ucb_curve({"a": np.array([])})
