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

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from trials.data.dataset import Dataset
from trials.models.nets import EnsembleMLP, mlp, seeded

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
    return fqe_batch([policy], data, cfg, [seed], device)[0]


def fqe_batch(policies: Sequence[Policy], data: Dataset, cfg: FQEConfig, seeds: Sequence[int],
              device: torch.device | str = "cpu") -> list[FQEResult]:
    """:func:`fqe` of several policies on the same data at once: their critics are members of one ensemble
    (``trials.models.nets.EnsembleMLP``), one optimiser step updates all. Policy ``k`` gets exactly what
    ``fqe(policies[k], seed=seeds[k])`` computes alone (its critic initialised from its seed, its batches
    drawn by its own generator, its loss's gradient its own; Adam is elementwise), up to the summation
    order of the batched products. Each result's ``seconds`` is its share of the batch's wall clock."""
    if len(policies) != len(seeds) or not policies:
        raise ValueError(f"fqe_batch: {len(policies)} policies, {len(seeds)} seeds; one seed per policy")
    start = time.perf_counter()
    device = torch.device(device)
    k = len(policies)
    gens = [torch.Generator(device=device).manual_seed(s) for s in seeds]
    t = {name: torch.as_tensor(getattr(data, name), device=device)
         for name in ("observations", "actions", "rewards", "next_observations")}
    not_done = 1.0 - torch.as_tensor(data.terminals, device=device, dtype=torch.float32)
    obs_dim, act_dim = t["observations"].shape[1], t["actions"].shape[1]
    with seeded(seeds[0], device):  # its own draws are overwritten below; seeded, to leave the process's RNG be
        q = EnsembleMLP(k, obs_dim + act_dim, 1, cfg.hidden, cfg.layers).to(device)
    with torch.no_grad():  # member k starts from the plain MLP its seed initialises, as fqe() alone would
        for member, seed in enumerate(seeds):
            with seeded(seed, device):
                plain = [m for m in mlp(obs_dim + act_dim, 1, cfg.hidden, cfg.layers) if isinstance(m, nn.Linear)]
            for layer, linear in zip([*q.hidden, q.out], plain, strict=True):
                layer.weight[member].copy_(linear.weight.t())
                layer.bias[member].copy_(linear.bias.unsqueeze(0))
    target = copy.deepcopy(q).requires_grad_(False)
    params, target_params = list(q.parameters()), list(target.parameters())
    opt = torch.optim.Adam(params, lr=cfg.lr)
    r_min, r_max = float(data.rewards.min()), float(data.rewards.max())
    low, high = min(r_min, 0.0) / (1 - cfg.gamma), max(r_max, 0.0) / (1 - cfg.gamma)
    with torch.no_grad():  # the policies are fixed: each one's actions at every next state, once
        next_act = torch.stack([_batched(policy, t["next_observations"]) for policy in policies])
    n = len(data)
    members = torch.arange(k, device=device).unsqueeze(1)
    for _ in range(cfg.steps):
        idx = torch.stack([torch.randint(0, n, (cfg.batch_size,), generator=g, device=device) for g in gens])
        with torch.no_grad():
            boot = target(torch.cat([t["next_observations"][idx], next_act[members, idx]], dim=-1)).squeeze(-1)
            y = (t["rewards"][idx] + cfg.gamma * not_done[idx] * boot).clamp(low, high)
        pred = q(torch.cat([t["observations"][idx], t["actions"][idx]], dim=-1)).squeeze(-1)
        loss = (pred - y).pow(2).mean(1).sum()  # each member's own mean squared error; gradients do not mix
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            torch._foreach_lerp_(target_params, params, cfg.tau)
    starts = torch.as_tensor(data.initial_states(), device=device)
    with torch.no_grad():
        s0 = t["observations"][starts]
        a0 = torch.stack([_batched(policy, s0) for policy in policies])
        values = q(torch.cat([s0.expand(k, -1, -1), a0], dim=-1)).squeeze(-1).mean(1)
    seconds = (time.perf_counter() - start) / k
    return [FQEResult(value=float(v), initial_states=int(len(starts)), steps=cfg.steps, seconds=seconds,
                      target_bounds=(low, high)) for v in values]


def _batched(policy: Policy, obs: torch.Tensor, rows: int = 65_536) -> torch.Tensor:
    return torch.cat([policy(obs[i:i + rows]) for i in range(0, len(obs), rows)])


def discounted_returns(data: Dataset, gamma: float) -> np.ndarray:
    """Each episode's discounted return from its first row, split as :meth:`Dataset.episode_returns`."""
    starts = data.initial_states()
    ends = np.append(starts[1:], len(data))
    return np.array([float(np.sum(data.rewards[a:b] * gamma ** np.arange(b - a))) for a, b in zip(starts, ends,
                                                                                                 strict=True)])
