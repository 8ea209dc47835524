"""Branched model rollouts (MBPO/MOPO): from dataset states, ``horizon`` steps in the learned model with
the current policy; the next state comes from a random elite, the reward is ``r - lam * u(s, a)``, and a
rollout stops where the environment's true termination rule says so. Everything stays on the device."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from trials.dynamics import EnsembleDynamics
from trials.envs import TerminationFn
from trials.penalties import Penalty
from trials.replay import ReplayBuffer
from trials.sac import SAC


@dataclass
class RolloutStats:
    transitions: int
    penalty_mean: float
    penalty_max: float
    raw_reward_mean: float
    terminated_fraction: float
    """Fraction of the start states whose rollout ended in a terminal state before the horizon."""
    mean_length: float


@torch.no_grad()
def rollout(model: EnsembleDynamics, elites: torch.Tensor, agent: SAC, start_obs: torch.Tensor, horizon: int,
            terminated: TerminationFn, penalty: Penalty, lam: float, buffer: ReplayBuffer,
            gen: torch.Generator) -> RolloutStats:
    """Roll out from every row of ``start_obs`` and append the transitions to ``buffer``."""
    obs = start_obs
    n_start = obs.shape[0]
    pen_sum = torch.zeros((), device=obs.device)
    pen_max = torch.zeros((), device=obs.device)
    rew_sum = torch.zeros((), device=obs.device)
    total = 0
    ended = 0
    for _ in range(horizon):
        if obs.shape[0] == 0:
            break
        act = agent.act(obs)
        mean, std = model.predict(obs, act)  # [N, B, D]
        b = obs.shape[0]
        k = elites[torch.randint(0, elites.shape[0], (b,), generator=gen, device=obs.device)]
        rows = torch.arange(b, device=obs.device)
        noise = torch.randn(mean.shape[1:], generator=gen, device=obs.device)
        sample = mean[k, rows] + std[k, rows] * noise
        u = penalty(mean, std, sample, k)
        next_obs = obs + sample[:, :-1]
        reward = sample[:, -1]
        done = terminated(next_obs)
        # A diverging model can emit non-finite states; they are terminal, and stored finite so that
        # (1 - done) * Q(s') cannot turn into NaN.
        buffer.add_batch(obs, act, torch.nan_to_num(reward - lam * u, nan=0.0), torch.nan_to_num(next_obs),
                         done.float())
        pen_sum += u.sum()
        pen_max = torch.maximum(pen_max, u.max())
        rew_sum += reward.sum()
        total += b
        n_done = int(done.sum())
        ended += n_done
        obs = next_obs[~done] if n_done else next_obs
    return RolloutStats(
        transitions=total,
        penalty_mean=float(pen_sum) / max(total, 1),
        penalty_max=float(pen_max),
        raw_reward_mean=float(rew_sum) / max(total, 1),
        terminated_fraction=ended / max(n_start, 1),
        mean_length=total / max(n_start, 1),
    )
