"""The model-based estimate of a policy's return: exact in a model whose predictions are known, and never
taken in the pool the policy was trained against."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from trials.data.dataset import load_hdf5
from trials.measure.model_value import ModelValueConfig, SamePoolError, model_value
from trials.models.dynamics import EnsembleDynamics


def still_model(obs_dim: int, act_dim: int, reward: float) -> EnsembleDynamics:
    """Three members that all predict 'the state stays, the reward is ``reward``', with a negligible std."""
    model = EnsembleDynamics(3, obs_dim, act_dim, hidden=8, layers=1)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.min_logvar.fill_(-30.0)
        model.max_logvar.fill_(-29.0)
        model.head.bias[:, :, obs_dim] = reward  # the mean's last dimension is the reward
        model.head.bias[:, :, obs_dim + 1:] = -30.0  # log-variances
        model.holdout_loss.copy_(torch.tensor([0.3, 0.1, 0.2]))
    return model


def test_in_a_known_model_the_estimate_is_the_known_return(hopper_random_file: Path) -> None:
    data = load_hdf5(hopper_random_file)
    model = still_model(data.spec.obs_dim, data.spec.act_dim, reward=2.0)
    policy = lambda s: torch.zeros(len(s), data.spec.act_dim)  # noqa: E731
    cfg = ModelValueConfig(gamma=0.9, horizon=40, elites=2)
    out = model_value(policy, data, model, "pool-b", trained_on="pool-a", cfg=cfg, seed=0)
    assert out.rollouts == len(data.initial_states()) and out.horizon == 40
    assert out.mean_length == pytest.approx(40)  # the start states are healthy and the state never moves
    assert out.undiscounted == pytest.approx(80.0, rel=1e-4) and out.undiscounted_se < 1e-3
    assert out.discounted == pytest.approx(2.0 * (1 - 0.9 ** 40) / (1 - 0.9), rel=1e-4)


def test_the_pool_the_policy_was_trained_against_is_refused(hopper_random_file: Path) -> None:
    data = load_hdf5(hopper_random_file)
    model = still_model(data.spec.obs_dim, data.spec.act_dim, reward=1.0)
    with pytest.raises(SamePoolError, match="trained against it") as info:
        model_value(lambda s: torch.zeros(len(s), 3), data, model, "pool-a", trained_on="pool-a")
    assert "\n" not in str(info.value)
