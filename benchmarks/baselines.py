"""Baselines the trial engine is compared with, written the straightforward way:

- :class:`LoopEnsemble`: the dynamics ensemble as separate ``nn.Sequential`` members run in a Python
  loop (same architecture, same soft log-variance bounds, same normalisation; it can copy an
  :class:`~trials.models.dynamics.EnsembleDynamics`' weights so both compute the same function);
- :class:`PlainSAC`: a textbook eager SAC update (two separate critic MLPs, no fusing);
- :func:`sb3_sac`: stable-baselines3's SAC at equal sizes with a replay buffer pre-filled with random data
  (optional: ``pip install -e '.[bench]'``).
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from trials.models.dynamics import EnsembleDynamics, bound_logvar
from trials.models.nets import mlp


class LoopEnsemble(nn.Module):
    """``members`` Gaussian MLPs over ``[delta_s, r]``, each its own ``nn.Sequential``, run one by one."""

    def __init__(self, members: int, obs_dim: int, act_dim: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.members_n, self.obs_dim, self.act_dim = members, obs_dim, act_dim
        out_dim = obs_dim + 1
        self.members = nn.ModuleList(self._member(obs_dim + act_dim, hidden, layers, 2 * out_dim)
                                     for _ in range(members))
        self.max_logvar = nn.Parameter(torch.full((1, out_dim), 0.5))
        self.min_logvar = nn.Parameter(torch.full((1, out_dim), -10.0))
        self.register_buffer("in_mean", torch.zeros(obs_dim + act_dim))
        self.register_buffer("in_std", torch.ones(obs_dim + act_dim))
        self.register_buffer("out_mean", torch.zeros(out_dim))
        self.register_buffer("out_std", torch.ones(out_dim))

    @staticmethod
    def _member(in_dim: int, hidden: int, layers: int, out_dim: int) -> nn.Sequential:
        return mlp(in_dim, out_dim, hidden, layers, activation=nn.SiLU)

    @classmethod
    def from_ensemble(cls, model: EnsembleDynamics) -> LoopEnsemble:
        """A loop ensemble computing exactly what ``model`` computes (weights copied member by member)."""
        hidden = model.layers[0].out_features
        loop = cls(model.members, model.obs_dim, model.act_dim, hidden, len(model.layers))
        with torch.no_grad():
            for m, seq in enumerate(loop.members):
                linears = [mod for mod in seq if isinstance(mod, nn.Linear)]
                for lin, ens in zip(linears, [*model.layers, model.head], strict=True):
                    lin.weight.copy_(ens.weight[m].T)
                    lin.bias.copy_(ens.bias[m, 0])
            loop.max_logvar.copy_(model.max_logvar[0])
            loop.min_logvar.copy_(model.min_logvar[0])
            for name in ("in_mean", "in_std", "out_mean", "out_std"):
                getattr(loop, name).copy_(getattr(model, name))
        return loop

    def forward_normalized(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised inputs ``[M, B, in]`` (or ``[B, in]``) -> mean and log-variance ``[M, B, out]``."""
        outs = [member(x[m] if x.dim() == 3 else x) for m, member in enumerate(self.members)]
        mean, logvar = torch.stack(outs).chunk(2, dim=-1)
        return mean, bound_logvar(logvar, self.max_logvar, self.min_logvar)

    # The same (de)normalisation as the vectorised ensemble; only forward_normalized differs.
    predict = EnsembleDynamics.predict

    def decay_loss(self, decays: tuple[float, ...]) -> torch.Tensor:
        """The L2 weight decay of ``trials.models.dynamics.fit``: per layer index, summed over members."""
        total = torch.zeros(())
        for seq in self.members:
            linears = [mod for mod in seq if isinstance(mod, nn.Linear)]
            for i, lin in enumerate(linears):
                total = total + decays[min(i, len(decays) - 1)] * 0.5 * lin.weight.pow(2).sum()
        return total


class PlainSAC:
    """A textbook eager SAC update: an actor MLP, two critic MLPs and their targets, three Adams."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: int, layers: int, lr: float = 3e-4) -> None:
        self.actor = mlp(obs_dim, 2 * act_dim, hidden, layers)
        self.q1 = mlp(obs_dim + act_dim, 1, hidden, layers)
        self.q2 = mlp(obs_dim + act_dim, 1, hidden, layers)
        self.q1_target, self.q2_target = copy.deepcopy(self.q1), copy.deepcopy(self.q2)
        self.log_alpha = torch.zeros((), requires_grad=True)
        self.target_entropy = -float(act_dim)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=lr)
        self.critic_opt = torch.optim.Adam([*self.q1.parameters(), *self.q2.parameters()], lr=lr)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=lr)

    def _pi(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = self.actor(obs).chunk(2, dim=-1)
        log_std = log_std.clamp(-5.0, 2.0)
        dist = torch.distributions.Normal(mean, log_std.exp())
        pre = dist.rsample()
        act = torch.tanh(pre)
        log_prob = dist.log_prob(pre).sum(-1) - (2 * (math.log(2) - pre - F.softplus(-2 * pre))).sum(-1)
        return act, log_prob

    def update(self, obs: torch.Tensor, act: torch.Tensor, rew: torch.Tensor, next_obs: torch.Tensor,
               done: torch.Tensor, gamma: float = 0.99, tau: float = 0.005) -> None:
        alpha = self.log_alpha.exp().detach()
        with torch.no_grad():
            next_act, next_logp = self._pi(next_obs)
            sa = torch.cat([next_obs, next_act], -1)
            q_next = torch.min(self.q1_target(sa), self.q2_target(sa)).squeeze(-1) - alpha * next_logp
            target = rew + gamma * (1 - done) * q_next
        sa = torch.cat([obs, act], -1)
        critic_loss = F.mse_loss(self.q1(sa).squeeze(-1), target) + F.mse_loss(self.q2(sa).squeeze(-1), target)
        self.critic_opt.zero_grad()
        critic_loss.backward()
        self.critic_opt.step()
        new_act, logp = self._pi(obs)
        sa = torch.cat([obs, new_act], -1)
        actor_loss = (alpha * logp - torch.min(self.q1(sa), self.q2(sa)).squeeze(-1)).mean()
        self.actor_opt.zero_grad()
        actor_loss.backward()
        self.actor_opt.step()
        alpha_loss = -(self.log_alpha * (logp.detach() + self.target_entropy)).mean()
        self.alpha_opt.zero_grad()
        alpha_loss.backward()
        self.alpha_opt.step()
        with torch.no_grad():
            for net, tgt in ((self.q1, self.q1_target), (self.q2, self.q2_target)):
                for p, tp in zip(net.parameters(), tgt.parameters(), strict=True):
                    tp.mul_(1 - tau).add_(p, alpha=tau)


def sb3_available() -> bool:
    try:
        import stable_baselines3  # noqa: F401, PLC0415
    except ImportError:
        return False
    return True


def sb3_sac(obs_dim: int, act_dim: int, hidden: int, layers: int, batch: int, buffer_rows: int,
            seed: int = 0) -> Any:
    """stable-baselines3's SAC (``net_arch`` ``[hidden] * layers``, auto entropy, CPU) whose replay
    buffer holds ``buffer_rows`` random transitions; ``model.train(gradient_steps=1, batch_size=batch)``
    is then one update."""
    import gymnasium as gym  # noqa: PLC0415
    from stable_baselines3 import SAC  # noqa: PLC0415
    from stable_baselines3.common.logger import configure  # noqa: PLC0415

    class SpacesOnly(gym.Env):
        """An env that only declares Hopper-sized spaces (SB3 needs them to build its networks)."""

        observation_space = gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)
        action_space = gym.spaces.Box(-1.0, 1.0, (act_dim,), np.float32)

    model = SAC("MlpPolicy", SpacesOnly(), policy_kwargs={"net_arch": [hidden] * layers}, buffer_size=buffer_rows,
                batch_size=batch, learning_starts=0, device="cpu", seed=seed, verbose=0)
    model.set_logger(configure(None, []))
    rng = np.random.default_rng(seed)
    rb = model.replay_buffer
    rb.observations[:] = rng.standard_normal(rb.observations.shape, dtype=np.float32)
    rb.next_observations[:] = rng.standard_normal(rb.next_observations.shape, dtype=np.float32)
    rb.actions[:] = rng.uniform(-1.0, 1.0, rb.actions.shape).astype(np.float32)
    rb.rewards[:] = rng.standard_normal(rb.rewards.shape, dtype=np.float32)
    rb.dones[:] = 0.0
    rb.full = True
    return model
