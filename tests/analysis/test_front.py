"""The front table's configuration columns: each arm by the settings where the two differ, then the shared
ones once."""

from analysis.front import _setting, _split_keys


def test_configurations_are_split_into_differing_and_shared_settings() -> None:
    hand = {"penalty": "max_aleatoric", "lam": 1.0, "horizon": 5, "num_models": 7, "sac.actor_lr": 3e-4}
    best = {"penalty": "ensemble_var", "lam": 20.3, "horizon": 5, "num_models": 7, "sac.actor_lr": 3e-4,
            "real_ratio": 0.8}
    differ, shared = _split_keys(hand, best)
    assert sorted(differ) == ["lam", "penalty", "real_ratio"]
    assert sorted(shared) == ["horizon", "num_models", "sac.actor_lr"]
    assert _setting(hand, differ) == "lam=1, penalty=max_aleatoric"  # it has no real_ratio
    assert _setting(best, differ) == "lam=20.3, penalty=ensemble_var, real_ratio=0.8"
    assert _setting(hand, shared) == "horizon=5, num_models=7, sac.actor_lr=0.0003"
    assert _setting(hand, []) == "-"
