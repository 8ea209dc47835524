"""Branched model rollouts (MBPO/MOPO): from dataset states, ``horizon`` steps in the learned model with
the current policy; the next state comes from a random elite, the reward is ``r - lam * u(s, a)``, and a
rollout stops where the environment's true termination rule says so. Everything stays on the device.

Start states are processed in chunks of ``chunk_size``: a 50,000-state batch through 7 members of width
200 would allocate ~280 MB per layer activation, and fresh allocations of that size cost more in page
faults than the arithmetic (docs/design.md, machine facts). Chunks of 1,024 keep each activation (7 x 1024 x 200 floats,
5.7 MB) under glibc's mmap threshold, so freed blocks are reused instead of re-faulted (measured: 4,096-row
chunks still took 2 million page faults per round; 1,024 took none, 10 s -> 6 s). Within a chunk every
step runs on all rows with an ``alive`` mask (no per-step host sync, no per-step compaction); the
finished rows of the chunk are gathered once and appended to the buffer. That is a CPU's trade: on a GPU
a chunk's cost is its kernel launches (about 27,000 and 49 host syncs per 50,000-row round in chunks of
1,024), so there the default chunk is the whole round (:func:`default_chunk`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from trials.agent.sac import SAC
from trials.config import Precision
from trials.envs import TerminationFn
from trials.models.dynamics import EnsembleDynamics
from trials.models.precision import precision_context
from trials.rollouts.penalties import Penalty
from trials.rollouts.replay import ReplayBuffer

DEFAULT_CHUNK = 1024
#: Rows per chunk on a GPU: a whole round of MOPO's 50,000 start states at once.
GPU_CHUNK = 65_536


def default_chunk(device: torch.device) -> int:
    """Start states per chunk on ``device``: :data:`DEFAULT_CHUNK` on a CPU, :data:`GPU_CHUNK` elsewhere."""
    return DEFAULT_CHUNK if device.type == "cpu" else GPU_CHUNK


@dataclass
class RolloutStats:
    transitions: int
    penalty_mean: float
    penalty_max: float
    raw_reward_mean: float
    terminated_fraction: float
    """Fraction of the start states whose rollout ended in a terminal state before the horizon."""
    mean_length: float
    nonfinite: int = 0
    """Rows ended because the model's prediction (or its penalty) was not finite; none of them is stored."""


@torch.no_grad()
def rollout(model: EnsembleDynamics, elites: torch.Tensor, agent: SAC, start_obs: torch.Tensor, horizon: int,
            terminated: TerminationFn, penalty: Penalty, lam: float, buffer: ReplayBuffer,
            gen: torch.Generator, chunk_size: int | None = None,
            precision: Precision = "float32") -> RolloutStats:
    """Roll out from every row of ``start_obs`` and append the transitions to ``buffer``. ``precision``
    is the format of the ensemble's matrix multiplies (``trials.models.precision``; its outputs come back as
    float32); ``chunk_size``: start states per chunk (None: :func:`default_chunk` of the device)."""
    device = start_obs.device
    chunk_size = chunk_size or default_chunk(device)
    pen_sum = torch.zeros((), device=device)
    pen_max = torch.zeros((), device=device)
    rew_sum = torch.zeros((), device=device)
    count = torch.zeros((), device=device)
    ended = torch.zeros((), device=device)
    nonfinite = torch.zeros((), device=device)
    obs_dim, act_dim = agent.obs_dim, agent.act_dim
    for start in range(0, start_obs.shape[0], chunk_size):
        obs = start_obs[start:start + chunk_size]
        c = obs.shape[0]
        # Staging for the chunk's h steps; rows that already ended are masked out.
        s_obs = torch.empty(horizon, c, obs_dim, device=device)
        s_act = torch.empty(horizon, c, act_dim, device=device)
        s_rew = torch.empty(horizon, c, device=device)
        s_next = torch.empty(horizon, c, obs_dim, device=device)
        s_done = torch.empty(horizon, c, device=device)
        alive = torch.ones(horizon + 1, c, dtype=torch.bool, device=device)
        stored = torch.empty(horizon, c, dtype=torch.bool, device=device)
        rows = torch.arange(c, device=device)
        for t in range(horizon):
            act = agent.act(obs)
            with precision_context(precision, device):
                mean, std = model.predict(obs, act)  # [N, c, D]
            k = elites[torch.randint(0, elites.shape[0], (c,), generator=gen, device=device)]
            noise = torch.randn(mean.shape[1:], generator=gen, device=device)
            sample = torch.addcmul(mean[k, rows], std[k, rows], noise)
            u = penalty(mean, std, sample, k)
            # A diverging model can predict inf or NaN: such a row ends here and is not stored (storing it
            # as a clamped ~3.4e38 would turn into NaN downstream, 0 * inf in the TD target).
            next_obs = obs + sample[:, :-1]
            reward = sample[:, -1]
            penalised = reward - lam * u
            finite = torch.isfinite(next_obs).all(-1) & torch.isfinite(penalised)
            live = alive[t] & finite
            nonfinite += (alive[t] & ~finite).sum()
            next_obs = torch.where(finite.unsqueeze(-1), next_obs, obs)  # rows that ended stay finite
            done = terminated(next_obs)
            s_obs[t], s_act[t], s_next[t] = obs, act, next_obs
            s_rew[t] = penalised
            s_done[t] = done.float()
            stored[t] = live
            alive[t + 1] = live & ~done
            lu = torch.where(live, u, torch.zeros_like(u))
            pen_sum += lu.sum()
            pen_max = torch.maximum(pen_max, lu.max())
            rew_sum += torch.where(live, reward, torch.zeros_like(reward)).sum()
            count += live.sum()
            ended += (live & done).sum()
            obs = next_obs
        idx = stored.flatten().nonzero().squeeze(1)  # one host sync per chunk
        buffer.add_batch(*(x.flatten(0, 1)[idx] for x in (s_obs, s_act, s_rew, s_next, s_done)))
    n_start = max(start_obs.shape[0], 1)
    total = int(count)
    return RolloutStats(
        transitions=total,
        penalty_mean=float(pen_sum) / max(total, 1),
        penalty_max=float(pen_max),
        raw_reward_mean=float(rew_sum) / max(total, 1),
        terminated_fraction=float(ended) / n_start,
        mean_length=total / n_start,
        nonfinite=int(nonfinite),
    )
