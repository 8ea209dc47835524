"""Uncertainty calibration: the true next states are the real simulator's, every heuristic is measured at
the states a rollout reaches, and the state rebuilt from an observation is flagged when inexact."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from trials.agent.sac import SAC
from trials.config import DynamicsConfig, TrialConfig
from trials.data.dataset import Dataset
from trials.envs import ENVS, set_state
from trials.measure.calibration import (
    HEURISTICS,
    CalibrationConfig,
    CalibrationError,
    CalibrationResult,
    calibrate,
    state_from_obs,
)
from trials.models.pool import load_or_train_pool
from trials.rollouts.penalties import PENALTIES

# Trained long enough that random-policy rollouts survive 3 model steps (raw targets learn slower early).
SMALL = DynamicsConfig(pool_size=5, hidden=32, layers=2, max_epochs=20)


@pytest.fixture(scope="module")
def pool(hopper_random_file: Path, tmp_path_factory: pytest.TempPathFactory):
    from trials.data.dataset import load_hdf5

    ds = load_hdf5(hopper_random_file)
    model, _ = load_or_train_pool(ds, 0, SMALL, tmp_path_factory.mktemp("pools"))
    return model


def _cfg(**kw) -> CalibrationConfig:
    return CalibrationConfig(**{"states": 40, "horizon": 1, "num_models": 5, "num_elites": 3, **kw})


def _step_by_hand(qpos: np.ndarray, qvel: np.ndarray, action: np.ndarray) -> np.ndarray:
    env = ENVS["hopper"].make()
    env.reset(seed=1)
    set_state(env, qpos, qvel)
    obs = env.step(action)[0]
    env.close()
    return obs


def test_one_step_true_next_states_are_the_simulators(hopper_random: Dataset, pool) -> None:
    r = calibrate(hopper_random, pool, _cfg(policy="data"))
    assert (r.step == 1).all() and r.exact.all() and len(r.step) == 40
    # With the logged actions from the stored simulator states, the real next state is the dataset's.
    np.testing.assert_allclose(r.true_next, hopper_random.next_observations[r.start], atol=1e-5)
    for i in (0, 17, 39):  # and a fresh env stepped by hand agrees
        j = r.start[i]
        by_hand = _step_by_hand(hopper_random.qpos[j], hopper_random.qvel[j], hopper_random.actions[j])
        np.testing.assert_allclose(r.true_next[i], by_hand, atol=1e-9)


def test_k_step_states_are_rebuilt_from_model_observations(hopper_random: Dataset, pool) -> None:
    r = calibrate(hopper_random, pool, _cfg(policy="random", horizon=3, seed=3))
    assert set(r.step) == {1, 2, 3}
    later = np.flatnonzero(r.step > 1)
    assert len(later) > 20
    for i in later[:: max(1, len(later) // 6)]:
        obs = r.obs[i]  # hopper: obs = [qpos[1:], qvel], x position set to 0
        by_hand = _step_by_hand(np.concatenate([[0.0], obs[:5]]), obs[5:], r.action[i])
        np.testing.assert_allclose(r.true_next[i], by_hand, atol=1e-9)
    # A rollout continues from the sampled next state of its previous step.
    for i in later[:10]:
        prev = np.flatnonzero((r.start == r.start[i]) & (r.step == r.step[i] - 1))[0]
        np.testing.assert_allclose(r.obs[i], r.sample_next[prev], atol=1e-6)


def test_every_heuristic_is_measured_beside_the_errors(hopper_random: Dataset, pool) -> None:
    r = calibrate(hopper_random, pool, _cfg(policy="random", horizon=2))
    assert set(r.heuristics) == set(PENALTIES) - {"none"} == set(HEURISTICS)
    for name, values in r.heuristics.items():
        assert values.shape == r.step.shape and np.isfinite(values).all() and np.ptp(values) > 0, name
    np.testing.assert_allclose(r.true_error, np.linalg.norm(r.pred_next - r.true_next, axis=1))
    np.testing.assert_allclose(r.sample_error, np.linalg.norm(r.sample_next - r.true_next, axis=1))
    assert (r.reward_error >= 0).all()


def test_data_policy_replays_the_logged_actions_within_one_episode(hopper_random: Dataset, pool) -> None:
    r = calibrate(hopper_random, pool, _cfg(policy="data", horizon=3, states=60))
    np.testing.assert_allclose(r.action, hopper_random.actions[r.start + r.step - 1])
    ends = hopper_random.terminals | hopper_random.timeouts
    for s in np.unique(r.start):  # the two transitions a 3-step replay crosses stay in the episode
        assert not ends[s:s + 2].any()


def test_sac_policy_from_a_policy_file(hopper_random: Dataset, hopper_random_file: Path, pool, tmp_path: Path) -> None:
    cfg = TrialConfig(dataset=str(hopper_random_file)).with_overrides({"sac.hidden": 16})
    agent = SAC(11, 3, cfg.sac)
    path = tmp_path / "policy.pt"  # the format `mbrl-tune train` writes
    torch.save({"actor": agent.actor.state_dict(), "config": cfg.to_dict()}, path)
    r = calibrate(hopper_random, pool, _cfg(policy="sac", policy_file=path, horizon=2))
    assert (np.abs(r.action) <= 1).all() and not np.allclose(r.action[:5], hopper_random.actions[r.start[:5]])
    with pytest.raises(CalibrationError, match="needs a policy.pt"):
        calibrate(hopper_random, pool, _cfg(policy="sac"))


def test_states_rebuilt_from_observations_are_flagged_when_inexact() -> None:
    obs = np.zeros(11)
    qpos, qvel, exact = state_from_obs("hopper", obs, 6)
    assert qpos.shape == (6,) and qvel.shape == (6,) and qpos[0] == 0 and exact
    obs[7] = 10.0  # a velocity at Gymnasium's clip bound: the true one may be larger
    assert not state_from_obs("hopper", obs, 6)[2]
    big = np.full(17, 50.0)
    assert state_from_obs("halfcheetah", big, 9)[2], "HalfCheetah does not clip velocities"
    assert not state_from_obs("walker2d", np.zeros(17), 9)[2], "Walker2d rebuilds are approximate"
    with pytest.raises(CalibrationError, match="no rule"):
        state_from_obs("inverted_pendulum", np.zeros(4), 2)


def test_result_round_trips_through_its_file(hopper_random: Dataset, pool, tmp_path: Path) -> None:
    r = calibrate(hopper_random, pool, _cfg(policy="random", horizon=2, states=10))
    back = CalibrationResult.load(r.save(tmp_path / "c.npz"))
    np.testing.assert_array_equal(back.true_error, r.true_error)
    np.testing.assert_array_equal(back.heuristics["loo_kl"], r.heuristics["loo_kl"])
    assert back.meta == r.meta
