"""Soft Actor-Critic (Haarnoja et al. 2018, the automatic-entropy version): tanh-Gaussian actor, an
ensemble of N critics computed as one batched network (N = 2: SAC's twin critics), Polyak-averaged
targets, entropy temperature tuned toward ``-act_dim``. Used online to make behaviour policies and
offline on the real/model mix of a trial.

Value pessimism from the critic ensemble (EDAC, An et al. 2021; RAVL, Sims et al. 2024): the TD target
and the actor's objective take the minimum over all N critics, and ``eta > 0`` adds EDAC's
gradient-diversity term, the mean pairwise cosine similarity of the members' action gradients
``eta / (N - 1) * mean_b sum_{i != j} <g_i, g_j>`` with ``g_i = grad_a Q_i(s_b, a_b) / ||grad_a Q_i||``
(formulas in docs/design.md). N = 2 with ``eta = 0`` is plain SAC."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from trials.config import SACConfig
from trials.models.nets import EnsembleMLP, mlp

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0


def actor_lr(cfg: SACConfig, epoch: int, epochs: int) -> float:
    """The actor's learning rate in 0-based ``epoch`` of ``epochs`` under ``cfg.actor_lr_schedule``."""
    if cfg.actor_lr_schedule == "cosine":
        return 0.5 * cfg.actor_lr * (1.0 + math.cos(math.pi * epoch / epochs))
    return cfg.actor_lr


class Actor(nn.Module):
    """Tanh-squashed diagonal Gaussian policy."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.net = mlp(obs_dim, 2 * act_dim, hidden, layers)

    def forward(self, obs: torch.Tensor, deterministic: bool = False, with_log_prob: bool = True,
                gen: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        mean, log_std = self.net(obs).chunk(2, dim=-1)
        if deterministic:
            return torch.tanh(mean), None
        log_std = log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)
        std = log_std.exp()
        eps = torch.randn(mean.shape, generator=gen, device=mean.device, dtype=mean.dtype)
        pre = mean + std * eps
        act = torch.tanh(pre)
        if not with_log_prob:
            return act, None
        return act, squashed_log_prob(pre, eps, log_std)


def squashed_log_prob(pre: torch.Tensor, eps: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """Log-probability of ``tanh(pre)`` for ``pre = mean + exp(log_std) * eps``: log N(pre; mean, std) minus
    the tanh Jacobian, in the numerically stable softplus form, summed over the last dim."""
    log_prob = (-0.5 * eps.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
    return log_prob - (2 * (math.log(2) - pre - F.softplus(-2 * pre))).sum(-1)


@dataclass
class SACStats:
    """Sums of per-update diagnostics over a stretch of updates (tensors, so no host sync per step)."""

    critic_loss: torch.Tensor
    actor_loss: torch.Tensor
    q_mean: torch.Tensor
    alpha: torch.Tensor
    updates: int = 0

    def add(self, critic_loss: torch.Tensor, actor_loss: torch.Tensor, q_mean: torch.Tensor,
            alpha: torch.Tensor) -> None:
        """Count one update's diagnostics (detached scalars)."""
        self.critic_loss += critic_loss
        self.actor_loss += actor_loss
        self.q_mean += q_mean
        self.alpha += alpha
        self.updates += 1

    def means(self) -> dict[str, float]:
        n = max(self.updates, 1)
        return {"critic_loss": float(self.critic_loss) / n, "actor_loss": float(self.actor_loss) / n,
                "q_mean": float(self.q_mean) / n, "alpha": float(self.alpha) / n}

    def finite(self) -> bool:
        return bool(torch.isfinite(torch.stack([self.critic_loss, self.actor_loss, self.q_mean])).all())


class SAC(nn.Module):
    """The agent: networks, optimisers and the update step."""

    def __init__(self, obs_dim: int, act_dim: int, cfg: SACConfig, device: torch.device | str = "cpu",
                 seed: int = 0) -> None:
        super().__init__()
        self.cfg = cfg
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.device = torch.device(device)
        # The agent's own generator for action noise: agents running side by side in one process (seeds in
        # lockstep) must not share the global RNG, or each one's results would depend on the others.
        self.gen = torch.Generator(device=self.device).manual_seed(seed)
        self.actor = Actor(obs_dim, act_dim, cfg.hidden, cfg.layers)
        self.critic = EnsembleMLP(cfg.num_critics, obs_dim + act_dim, 1, cfg.hidden, cfg.layers)
        self.critic_target = EnsembleMLP(cfg.num_critics, obs_dim + act_dim, 1, cfg.hidden, cfg.layers)
        self.critic_target.load_state_dict(self.critic.state_dict())
        self.critic_target.requires_grad_(False)
        self.log_alpha = nn.Parameter(torch.tensor(math.log(cfg.init_alpha)))
        self.target_entropy = float(cfg.target_entropy if cfg.target_entropy is not None else -act_dim)
        self.to(self.device)
        # Fused Adam: one kernel per optimiser step instead of a handful of ops per parameter tensor.
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.actor_lr, fused=True)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=cfg.critic_lr, fused=True)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=cfg.alpha_lr, fused=True)
        self._critic_params = list(self.critic.parameters())
        self._target_params = list(self.critic_target.parameters())

    def set_actor_lr_for_epoch(self, epoch: int, epochs: int) -> None:
        """Apply ``actor_lr_schedule`` for 0-based ``epoch`` of ``epochs``."""
        for group in self.actor_opt.param_groups:
            group["lr"] = actor_lr(self.cfg, epoch, epochs)

    def new_stats(self) -> SACStats:
        z = torch.zeros((), device=self.device)
        return SACStats(z.clone(), z.clone(), z.clone(), z.clone())

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        return self.actor(obs, deterministic=deterministic, with_log_prob=False, gen=self.gen)[0]

    def act_numpy(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        """One action for one observation from a real environment (numpy in, numpy out)."""
        t = torch.as_tensor(obs, dtype=torch.float32, device=self.device).unsqueeze(0)
        return self.act(t, deterministic=deterministic)[0].cpu().numpy()

    def _q(self, net: EnsembleMLP, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        return net(torch.cat([obs, act], dim=-1)).squeeze(-1)  # [N, B]

    @torch.no_grad()
    def target_value(self, obs: torch.Tensor) -> torch.Tensor:
        """``min_j Q_target_j(s, a')`` with ``a' ~ pi(.|s)``, for states ``[..., obs_dim]`` -> ``[...]``
        (MOBILE's penalty; no entropy term)."""
        flat = obs.reshape(-1, self.obs_dim)
        act = self.actor(flat, with_log_prob=False, gen=self.gen)[0]
        return self._q(self.critic_target, flat, act).min(0).values.reshape(obs.shape[:-1])

    def diversity_loss(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """EDAC's gradient-diversity term (before ``eta``): the pairwise cosine similarities of the
        members' action gradients, summed over the N(N-1) ordered pairs, averaged over the batch, divided
        by N - 1. Differentiable in the critics' weights (a double backward)."""
        return self._q_and_diversity(obs, act)[1]

    def _q_and_diversity(self, obs: torch.Tensor, act: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The critics' values ``[N, B]`` and the diversity term from one forward pass."""
        n = self.cfg.num_critics
        a = act.unsqueeze(0).expand(n, -1, -1).clone().requires_grad_(True)
        q = self.critic(torch.cat([obs.unsqueeze(0).expand(n, -1, -1), a], dim=-1)).squeeze(-1)
        (grad,) = torch.autograd.grad(q.sum(), a, create_graph=True)  # [N, B, A]: row i from Q_i only
        grad = grad / (torch.linalg.vector_norm(grad, dim=-1, keepdim=True) + 1e-10)
        gram = torch.einsum("iba,jba->bij", grad, grad)  # [B, N, N]
        off_diagonal = gram.sum((1, 2)) - gram.diagonal(dim1=1, dim2=2).sum(-1)
        return q, off_diagonal.mean() / (n - 1)

    def update(self, obs: torch.Tensor, act: torch.Tensor, rew: torch.Tensor, next_obs: torch.Tensor,
               done: torch.Tensor, stats: SACStats | None = None) -> None:
        """One gradient step on a batch (``rew`` and ``done`` shaped ``[B]``, ``done`` float)."""
        cfg = self.cfg
        alpha = self.log_alpha.exp().detach()
        with torch.no_grad():
            next_act, next_logp = self.actor(next_obs, gen=self.gen)
            q_next = self._q(self.critic_target, next_obs, next_act).min(0).values
            if not cfg.deterministic_backup:
                q_next = q_next - alpha * next_logp
            target = rew + cfg.gamma * (1.0 - done) * q_next
            if cfg.target_floor is not None:
                target = target.clamp_min(cfg.target_floor)
        if cfg.eta > 0:
            q, diversity = self._q_and_diversity(obs, act)
            critic_loss = (q - target).pow(2).mean(1).sum() + cfg.eta * diversity
        else:
            q = self._q(self.critic, obs, act)
            critic_loss = (q - target).pow(2).mean(1).sum()  # every critic, each its MSE
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_opt.step()

        new_act, logp = self.actor(obs, gen=self.gen)
        self.critic.requires_grad_(False)
        q_pi = self._q(self.critic, obs, new_act).min(0).values
        self.critic.requires_grad_(True)
        actor_loss = (alpha * logp - q_pi).mean()
        self.actor_opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_opt.step()

        if cfg.auto_alpha:
            alpha_loss = -(self.log_alpha * (logp.detach() + self.target_entropy)).mean()
            self.alpha_opt.zero_grad(set_to_none=True)
            alpha_loss.backward()
            self.alpha_opt.step()

        with torch.no_grad():
            torch._foreach_lerp_(self._target_params, self._critic_params, cfg.tau)
            if stats is not None:
                stats.add(critic_loss.detach(), actor_loss.detach(), q.detach().mean(), alpha)
