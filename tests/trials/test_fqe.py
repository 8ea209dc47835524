"""Fitted Q evaluation recovers values that can be computed directly: on datasets whose rewards are known
functions, it must find the fixed policy's value (not the data's), stop bootstrapping at terminals and
bootstrap through timeouts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trials.data.dataset import Dataset, DatasetMeta
from trials.envs import ENVS
from trials.measure.fqe import FQEConfig, discounted_returns, fqe, fqe_batch
from trials.models.nets import mlp, seeded

SPEC = ENVS["hopper"]
#: Small and fast: a soft target rate of 0.05 lets the bootstrapped value converge within the steps (the
#: error of a soft-updated target decays like exp(-steps * tau * (1 - gamma))).
CFG = FQEConfig(steps=4000, hidden=64, layers=2, lr=1e-3, batch_size=256, gamma=0.9, tau=0.05)


def dataset(n: int, rewards: np.ndarray | None = None, actions: np.ndarray | None = None,
            terminals: np.ndarray | None = None, timeouts: np.ndarray | None = None, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n, SPEC.obs_dim)).astype(np.float32)
    return Dataset(observations=obs, next_observations=rng.normal(size=(n, SPEC.obs_dim)).astype(np.float32),
                   actions=(rng.uniform(-1, 1, size=(n, SPEC.act_dim)) if actions is None else actions).astype(
                       np.float32),
                   rewards=(np.ones(n) if rewards is None else rewards).astype(np.float32),
                   terminals=np.zeros(n, bool) if terminals is None else terminals,
                   timeouts=np.zeros(n, bool) if timeouts is None else timeouts, qpos=None, qvel=None,
                   meta=DatasetMeta(env="hopper"))


def test_fqe_finds_the_value_of_the_policy_evaluated_not_of_the_data() -> None:
    """One-step episodes with reward a.w: the value of pi is the mean of pi(s0).w over the start states,
    whatever actions the data took (uniform random here)."""
    n, w = 4000, np.array([1.0, -0.5, 0.25])
    data = dataset(n, terminals=np.ones(n, bool))
    data.rewards = (data.actions @ w).astype(np.float32)
    m = torch.as_tensor(np.random.default_rng(1).normal(scale=0.5, size=(SPEC.obs_dim, SPEC.act_dim)),
                        dtype=torch.float32)
    bias = torch.tensor([0.8, -0.8, 0.8])
    policy = lambda s: torch.tanh(s @ m + bias)  # noqa: E731
    truth = float((policy(torch.as_tensor(data.observations)).numpy() @ w).mean())
    behaviour = float(data.rewards.mean())
    result = fqe(policy, data, CFG, seed=0)
    assert result.initial_states == n
    assert abs(result.value - truth) < 0.05, (result.value, truth, behaviour)
    assert abs(truth - behaviour) > 0.1  # the two differ, so the test tells them apart


def positional(n: int, length: int, **ends: np.ndarray) -> Dataset:
    """Episodes of ``length`` steps of reward 1 whose observations say the step (one-hot in the first
    ``length`` dimensions, noise elsewhere), so that each step's value is a function a critic can learn."""
    data = dataset(n, **ends)
    step = np.arange(n) % length
    for obs, at in ((data.observations, step), (data.next_observations, (step + 1) % length)):
        obs[:, :length] = np.eye(length, dtype=np.float32)[at]
        obs[:, length:] *= 0.1
    return data


def test_fqe_stops_at_terminals_and_bootstraps_through_timeouts() -> None:
    """Reward 1 every step in episodes of 5 steps: ending in a terminal the value from the first step is
    (1 - g^5)/(1 - g); cut by a timeout the episode goes on (the next state is a first step again), and
    the value is 1/(1 - g). Two seeds each, batched into one run (``fqe_batch``)."""
    n, length, g = 2000, 5, CFG.gamma
    ends = (np.arange(n) % length) == length - 1
    terminal = positional(n, length, terminals=ends)
    timeout = positional(n, length, timeouts=ends)
    assert np.allclose(discounted_returns(terminal, g), (1 - g ** length) / (1 - g))
    policy = lambda s: torch.zeros(len(s), SPEC.act_dim)  # noqa: E731
    ended = fqe_batch([policy, policy], terminal, CFG, seeds=[0, 1])
    cut = fqe_batch([policy, policy], timeout, CFG, seeds=[0, 1])
    assert ended[0].initial_states == n // length
    for r in ended:
        assert abs(r.value - (1 - g ** length) / (1 - g)) < 0.1, r.value
    for r in cut:
        assert abs(r.value - 1 / (1 - g)) < 0.3, r.value
    assert cut[0].target_bounds == (0.0, 1 / (1 - g))


def test_each_critic_starts_from_its_seeds_plain_mlp() -> None:
    """Before any update (steps 0), the batched ensemble's value is that of the plain MLP its seed initialises
    (``trials.models.nets.mlp`` under ``seeded``): the ensemble's weights are those, transposed right."""
    data = dataset(300, terminals=np.ones(300, bool))
    policies = [lambda s, k=k: torch.tanh(s[:, : SPEC.act_dim] * k) for k in (1.0, -1.0)]
    cfg = FQEConfig(steps=0, hidden=16, layers=2)
    s0 = torch.as_tensor(data.observations)[torch.as_tensor(data.initial_states())]
    for result, policy, seed in zip(fqe_batch(policies, data, cfg, seeds=[7, 8]), policies, [7, 8], strict=True):
        with seeded(seed):
            plain = mlp(SPEC.obs_dim + SPEC.act_dim, 1, 16, 2)
        with torch.no_grad():
            expected = float(plain(torch.cat([s0, policy(s0)], dim=-1)).mean())
        assert result.value == pytest.approx(expected, rel=1e-5, abs=1e-6)


def test_batched_fqe_is_each_policys_own() -> None:
    """Policies batched into one ensemble of critics get what each gets alone, from its own seed."""
    data = dataset(500, terminals=(np.arange(500) % 4) == 3)
    policies = [lambda s, k=k: torch.tanh(s[:, : SPEC.act_dim] * k) for k in (1.0, -2.0, 0.5)]
    cfg = FQEConfig(steps=50, hidden=32, layers=2)
    batched = fqe_batch(policies, data, cfg, seeds=[3, 4, 5])
    alone = [fqe(p, data, cfg, seed=s) for p, s in zip(policies, [3, 4, 5], strict=True)]
    assert [b.value for b in batched] == pytest.approx([a.value for a in alone], rel=1e-5)
    assert len({round(b.value, 4) for b in batched}) == 3  # three different policies, three values


def test_fqe_is_reproducible() -> None:
    data = dataset(500, terminals=np.ones(500, bool))
    policy = lambda s: torch.tanh(s[:, : SPEC.act_dim])  # noqa: E731
    cfg = FQEConfig(steps=200, hidden=32, layers=2)
    assert fqe(policy, data, cfg, seed=3).value == fqe(policy, data, cfg, seed=3).value
