"""A policy's return estimated in a learned model, no simulator: the policy rolled out from the dataset's
initial states in an *independent* dynamics pool, with the environment's true termination rule, over the
dataset's episode length.

Independent means a pool the policy was not trained against: a trial's policy was optimised to do well in
its own pool's rollouts, so its return there is biased upward; another seed's pool of the same data and
architecture is a fair judge (:func:`model_value` refuses the trial's own pool by its key). Each step takes
the next state and reward from a random elite's Gaussian, as MOPO's rollouts do, without a penalty. A row
whose prediction is not finite ends there. Reported: the mean discounted and undiscounted return over the
start states with their standard errors.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from trials.data.dataset import Dataset
from trials.measure.fqe import Policy
from trials.models.dynamics import EnsembleDynamics
from trials.models.pool import select_members


class SamePoolError(ValueError):
    """The estimate would use the pool the policy was trained against."""


@dataclass(frozen=True)
class ModelValueConfig:
    """Settings of one model-based estimate."""

    gamma: float = 0.99
    """Discount of the discounted return (the undiscounted one is reported too)."""
    horizon: int | None = None
    """Model steps per rollout; None: the dataset's longest episode (its environment's episode length)."""
    elites: int = 5
    """Members of the pool used (its best by holdout error); each step draws one of them per row."""
    repeats: int = 1
    """Rollouts per start state (more: a smaller standard error at the same start states)."""


@dataclass(frozen=True)
class ModelValueResult:
    discounted: float
    discounted_se: float
    undiscounted: float
    undiscounted_se: float
    rollouts: int
    horizon: int
    mean_length: float
    """Mean steps before termination (or the horizon)."""
    seconds: float


def episode_length(data: Dataset) -> int:
    """The dataset's longest episode (rows between starts)."""
    starts = data.initial_states().tolist() + [len(data)]
    return max(b - a for a, b in zip(starts[:-1], starts[1:], strict=True))


@torch.no_grad()
def model_value(policy: Policy, data: Dataset, pool: EnsembleDynamics, pool_key: str, trained_on: str,
                cfg: ModelValueConfig = ModelValueConfig(), seed: int = 0) -> ModelValueResult:
    """Estimate ``policy``'s return in ``pool`` (key ``pool_key``) from ``data``'s initial states; ``trained_on``
    is the key of the pool the policy was trained against, which must differ."""
    if pool_key == trained_on:
        raise SamePoolError(f"pool {pool_key}: the policy was trained against it; estimate its value in another "
                            f"seed's pool of the same data")
    start = time.perf_counter()
    device = pool.in_mean.device
    gen = torch.Generator(device=device).manual_seed(seed)
    horizon = cfg.horizon or episode_length(data)
    k = min(cfg.elites, pool.members)
    model, elites = select_members(pool, k, k)  # the pool's k best by holdout error, as a trial picks them
    starts = torch.as_tensor(data.initial_states(), device=device).repeat(cfg.repeats)
    obs = torch.as_tensor(data.observations, device=device)[starts]
    n = obs.shape[0]
    rows = torch.arange(n, device=device)
    terminated = data.spec.terminated
    alive = torch.ones(n, dtype=torch.bool, device=device)
    disc = torch.zeros(n, dtype=torch.float64, device=device)
    total = torch.zeros(n, dtype=torch.float64, device=device)
    length = torch.zeros(n, device=device)
    for t in range(horizon):
        act = policy(obs)
        mean, std = model.predict(obs, act)
        k = elites[torch.randint(0, elites.shape[0], (n,), generator=gen, device=device)]
        sample = torch.addcmul(mean[k, rows], std[k, rows], torch.randn(mean.shape[1:], generator=gen, device=device))
        next_obs, reward = obs + sample[:, :-1], sample[:, -1]
        finite = torch.isfinite(next_obs).all(-1) & torch.isfinite(reward)
        live = alive & finite
        reward = torch.where(live, reward, torch.zeros_like(reward)).double()
        disc += cfg.gamma ** t * reward
        total += reward
        length += live.float()
        next_obs = torch.where(live.unsqueeze(-1), next_obs, obs)  # a row that ended keeps its last state
        alive = live & ~terminated(next_obs)
        obs = next_obs
        if not bool(alive.any()):
            break

    def mean_se(x: torch.Tensor) -> tuple[float, float]:
        return float(x.mean()), float(x.std(unbiased=True)) / math.sqrt(n) if n > 1 else math.nan

    (d, d_se), (u, u_se) = mean_se(disc), mean_se(total)
    return ModelValueResult(discounted=d, discounted_se=d_se, undiscounted=u, undiscounted_se=u_se, rollouts=n,
                            horizon=horizon, mean_length=float(length.mean()), seconds=time.perf_counter() - start)
