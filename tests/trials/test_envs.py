"""The vectorised termination rules agree with the real Gymnasium environments."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trials.envs import ENVS, get_env_spec


def _real_transitions(name: str, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` transitions of uniform random actions: next observations and the env's terminated flags."""
    spec = ENVS[name]
    env = spec.make()
    env.action_space.seed(seed)
    env.reset(seed=seed)
    next_obs, terminated = [], []
    for _ in range(n):
        obs, _, term, trunc, _ = env.step(env.action_space.sample())
        next_obs.append(obs)
        terminated.append(term)
        if term or trunc:
            env.reset()
    env.close()
    return np.asarray(next_obs), np.asarray(terminated)


@pytest.mark.parametrize("name", ["hopper", "walker2d", "halfcheetah"])
def test_termination_rule_matches_real_env(name: str) -> None:
    next_obs, terminated = _real_transitions(name, 2000)
    spec = ENVS[name]
    assert np.array_equal(spec.terminated(next_obs), terminated)
    as_torch = spec.terminated(torch.as_tensor(next_obs)).numpy()
    assert np.array_equal(as_torch, terminated)
    if name != "halfcheetah":
        assert terminated.sum() >= 20, "random play must reach terminal states for the check to mean much"


def test_non_finite_states_terminate() -> None:
    obs = np.zeros((2, 17), dtype=np.float32)
    obs[0, 3] = np.nan
    assert ENVS["halfcheetah"].terminated(obs).tolist() == [True, False]


def test_normalized_score_uses_d4rl_references() -> None:
    hopper = ENVS["hopper"]
    assert hopper.normalized_score(-20.272305) == pytest.approx(0.0)
    assert hopper.normalized_score(3234.3) == pytest.approx(100.0)


def test_unknown_env_lists_known_ones() -> None:
    with pytest.raises(ValueError, match="known: hopper, halfcheetah, walker2d"):
        get_env_spec("ant")
