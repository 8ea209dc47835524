"""MOBILE's Bellman-inconsistency penalty (Sun et al., ICML 2023), computed at update time.

For each model row ``(s, a)`` of a SAC batch: every elite ``i`` predicts a Gaussian over ``[delta_s, r]``;
``K`` next states ``s'_ik`` are sampled from each, an action ``a'_ik ~ pi(.|s'_ik)`` is drawn from the
current policy, and the Bellman target's value part is ``Q'_ik = min_j Q_target_j(s'_ik, a'_ik)``. The
penalty is the spread of the members' estimates, ``u(s, a) = std_i(mean_k Q'_ik)`` (unbiased std over the
elites), and the TD target uses ``r - lam * u``; real rows get no penalty. This is OfflineRL-Kit's
``MOBILEPolicy.compute_lcb`` (``offlinerlkit/policy/model_based/mobile.py``) on this repository's ensemble.

Unlike the rollout-time heuristics of :mod:`trials.rollouts.penalties`, it needs the critics and the policy, so the
rollout stores unpenalised model rewards and the trial loop calls :func:`bellman_penalty` on each batch.
Its cost is ``K * E`` extra actor and critic forward passes per model row (``K = 10``, ``E = 5``: 50).
"""

from __future__ import annotations

import torch

from trials.agent.sac import SAC
from trials.models.dynamics import EnsembleDynamics


@torch.no_grad()
def bellman_penalty(model: EnsembleDynamics, elites: torch.Tensor, agent: SAC, obs: torch.Tensor,
                    act: torch.Tensor, samples: int, gen: torch.Generator) -> torch.Tensor:
    """``u(s, a)`` for the rows of ``obs`` ``[B, obs_dim]`` and ``act`` ``[B, act_dim]``: shape ``[B]``."""
    mean, std = model.predict(obs, act)  # [N, B, D]
    mean, std = mean[elites], std[elites]  # [E, B, D]
    noise = torch.randn((samples, *mean.shape), generator=gen, device=mean.device, dtype=mean.dtype)
    next_obs = obs + (mean + std * noise)[..., :-1]  # [K, E, B, obs_dim]
    value = agent.target_value(next_obs)  # [K, E, B]
    return value.mean(0).std(0)
