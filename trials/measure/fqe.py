"""Fitted Q evaluation (Le et al. 2019; the estimator of Paine et al. 2020 and of DOPE's ``policy_eval``): the
value of a fixed policy from the dataset's transitions alone, no simulator.

A critic ``Q(s, a)`` is trained on the dataset's transitions toward ``r + gamma (1 - terminal) Q'(s', pi(s'))``
with a soft-updated target ``Q'`` (timeouts bootstrap, as they are not terminal); the targets are clipped to
what the dataset's rewards allow (``[r_min, r_max] / (1 - gamma)``), which keeps an extrapolating critic from
running away. The policy's value is the mean of ``Q(s0, pi(s0))`` over the dataset's initial states, an
estimate of its expected discounted return from the start distribution the data saw (``(1 - gamma)`` times
it is the mean discounted reward per step). Reference settings (DOPE's): 256 x 256, Adam 3e-4, batch 256,
soft target 0.005, discount 0.99, up to 1M updates; :class:`FQEConfig` holds them, ``steps`` sets the cost.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from trials.data.dataset import Dataset
from trials.models.nets import mlp, seeded

#: A deterministic policy: observations ``[B, obs]`` -> actions ``[B, act]``, on the estimator's device.
Policy = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class FQEConfig:
    """Settings of one fitted-Q evaluation."""

    steps: int = 100_000
    """Critic updates (DOPE runs up to 1M; the value is read after the last)."""
    hidden: int = 256
    """Units per hidden layer of the critic."""
    layers: int = 2
    """Hidden layers of the critic."""
    lr: float = 3e-4
    """Adam learning rate."""
    batch_size: int = 256
    """Transitions per update."""
    tau: float = 0.005
    """Polyak rate of the target critic."""
    gamma: float = 0.99
    """Discount of the estimated value."""


@dataclass(frozen=True)
class FQEResult:
    value: float
    """Mean of ``Q(s0, pi(s0))`` over the dataset's initial states: the estimated discounted return."""
    initial_states: int
    """Initial states averaged over."""
    steps: int
    seconds: float
    """Wall-clock of the estimate (its cost)."""
    target_bounds: tuple[float, float]
    """The interval the TD targets were clipped to."""


def fqe(policy: Policy, data: Dataset, cfg: FQEConfig = FQEConfig(), seed: int = 0,
        device: torch.device | str = "cpu") -> FQEResult:
    """Estimate ``policy``'s discounted return on ``data`` by fitted Q evaluation (see the module docstring)."""
    start = time.perf_counter()
    device = torch.device(device)
    gen = torch.Generator(device=device).manual_seed(seed)
    t = {name: torch.as_tensor(getattr(data, name), device=device)
         for name in ("observations", "actions", "rewards", "next_observations")}
    not_done = 1.0 - torch.as_tensor(data.terminals, device=device, dtype=torch.float32)
    obs_dim, act_dim = t["observations"].shape[1], t["actions"].shape[1]
    with seeded(seed, device):
        q = mlp(obs_dim + act_dim, 1, cfg.hidden, cfg.layers).to(device)
    target = mlp(obs_dim + act_dim, 1, cfg.hidden, cfg.layers).to(device)
    target.load_state_dict(q.state_dict())
    target.requires_grad_(False)
    opt = torch.optim.Adam(q.parameters(), lr=cfg.lr)
    r_min, r_max = float(data.rewards.min()), float(data.rewards.max())
    low, high = min(r_min, 0.0) / (1 - cfg.gamma), max(r_max, 0.0) / (1 - cfg.gamma)
    with torch.no_grad():  # the policy is fixed: its actions at every next state, once
        next_act = _batched(policy, t["next_observations"])
    n = len(data)
    for _ in range(cfg.steps):
        idx = torch.randint(0, n, (cfg.batch_size,), generator=gen, device=device)
        with torch.no_grad():
            boot = target(torch.cat([t["next_observations"][idx], next_act[idx]], dim=-1)).squeeze(-1)
            y = (t["rewards"][idx] + cfg.gamma * not_done[idx] * boot).clamp(low, high)
        pred = q(torch.cat([t["observations"][idx], t["actions"][idx]], dim=-1)).squeeze(-1)
        loss = F.mse_loss(pred, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            for p, tp in zip(q.parameters(), target.parameters(), strict=True):
                tp.lerp_(p, cfg.tau)
    starts = torch.as_tensor(data.initial_states(), device=device)
    with torch.no_grad():
        s0 = t["observations"][starts]
        value = q(torch.cat([s0, _batched(policy, s0)], dim=-1)).mean()
    return FQEResult(value=float(value), initial_states=int(len(starts)), steps=cfg.steps,
                     seconds=time.perf_counter() - start, target_bounds=(low, high))


def _batched(policy: Policy, obs: torch.Tensor, rows: int = 65_536) -> torch.Tensor:
    return torch.cat([policy(obs[i:i + rows]) for i in range(0, len(obs), rows)])


def discounted_returns(data: Dataset, gamma: float) -> np.ndarray:
    """Each episode's discounted return from its first row, split as :meth:`Dataset.episode_returns`."""
    starts = data.initial_states()
    ends = np.append(starts[1:], len(data))
    return np.array([float(np.sum(data.rewards[a:b] * gamma ** np.arange(b - a))) for a, b in zip(starts, ends,
                                                                                                 strict=True)])
