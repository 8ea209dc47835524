"""S seeds' SAC learners as one batched learner: the same update as :class:`trials.agent.sac.SAC`, computed for
every seed at once.

Actor, critics and temperature get a leading seed dimension (the ensemble layers of :mod:`trials.models.nets`:
the actor is an ``S``-member ensemble, the critics an ``S * N``-member one, member ``s * N + j`` being
critic ``j`` of seed ``s``), and one optimiser step updates all seeds. Each seed keeps its own generator
and gets its own batch, and the loss is the sum of the seeds' losses, whose gradient in seed ``s``'s
weights is seed ``s``'s own (no term couples two seeds); Adam is elementwise. So every seed computes what
the same seed's :class:`SAC` computes alone, up to the summation order of the batched matrix products
(``tests/trials/test_seed_batch.py`` checks parameters and losses after a few updates).

The batched learner is built from the seeds' own agents (:meth:`SeedBatchedSAC.from_agents`, so each
seed starts from exactly its separate initialisation) and writes each seed's weights back into them
(:meth:`SeedBatchedSAC.write_back`) for rollouts, evaluation and checkpoints.
"""

from __future__ import annotations

import torch
from torch import nn

from trials.agent.sac import LOG_STD_MAX, LOG_STD_MIN, SAC, SACConfig, actor_lr, squashed_log_prob
from trials.models.nets import EnsembleLinear, EnsembleMLP


def _layers(ensemble: EnsembleMLP) -> list[EnsembleLinear]:
    return [*ensemble.hidden, ensemble.out]


def _linear_layers(module: nn.Module) -> list[nn.Linear]:
    return [m for m in module.modules() if isinstance(m, nn.Linear)]


class SeedBatchedSAC(nn.Module):
    """``S`` SAC learners with one config, updated together (see the module docstring)."""

    def __init__(self, seeds: int, obs_dim: int, act_dim: int, cfg: SACConfig, gens: list[torch.Generator],
                 target_entropy: float, device: torch.device) -> None:
        super().__init__()
        if cfg.eta > 0:
            raise ValueError("the seed-batched learner does not implement EDAC's eta > 0; run such seeds apart")
        self.seeds, self.obs_dim, self.act_dim, self.cfg = seeds, obs_dim, act_dim, cfg
        self.n = cfg.num_critics
        self.gens = gens
        self.device = device
        self.actor = EnsembleMLP(seeds, obs_dim, 2 * act_dim, cfg.hidden, cfg.layers)
        self.critic = EnsembleMLP(seeds * self.n, obs_dim + act_dim, 1, cfg.hidden, cfg.layers)
        self.critic_target = EnsembleMLP(seeds * self.n, obs_dim + act_dim, 1, cfg.hidden, cfg.layers)
        self.critic_target.requires_grad_(False)
        self.log_alpha = nn.Parameter(torch.zeros(seeds))
        self.target_entropy = target_entropy
        self.to(device)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.actor_lr, fused=True)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=cfg.critic_lr, fused=True)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=cfg.alpha_lr, fused=True)
        self._critic_params = list(self.critic.parameters())
        self._target_params = list(self.critic_target.parameters())

    @classmethod
    def from_agents(cls, agents: list[SAC]) -> SeedBatchedSAC:
        """The batched learner starting from the agents' current weights (optimiser moments start at zero,
        as a fresh agent's do); it shares their generators."""
        first = agents[0]
        if any(a.cfg != first.cfg for a in agents):
            raise ValueError("seeds batched together must share one SAC config")
        out = cls(len(agents), first.obs_dim, first.act_dim, first.cfg, [a.gen for a in agents],
                  first.target_entropy, first.device)
        with torch.no_grad():  # the actor's nn.Linear [out, in] weights, transposed to [in, out] per member
            for k, layer in enumerate(_layers(out.actor)):
                linears = [_linear_layers(a.actor)[k] for a in agents]
                layer.weight.copy_(torch.stack([m.weight.t() for m in linears]))
                layer.bias.copy_(torch.stack([m.bias.unsqueeze(0) for m in linears]))
            for name in ("critic", "critic_target"):  # N members per seed, seed-major
                for k, layer in enumerate(_layers(getattr(out, name))):
                    members = [_layers(getattr(a, name))[k] for a in agents]
                    layer.weight.copy_(torch.cat([m.weight for m in members]))
                    layer.bias.copy_(torch.cat([m.bias for m in members]))
            out.log_alpha.copy_(torch.stack([a.log_alpha.detach() for a in agents]))
        return out

    @torch.no_grad()
    def write_back(self, agents: list[SAC], only: list[int] | None = None) -> None:
        """Copy each seed's weights into its own agent (actor, critics, targets, temperature); ``only``:
        these seeds' indices."""
        for s, agent in enumerate(agents):
            if only is not None and s not in only:
                continue
            for linear, layer in zip(_linear_layers(agent.actor), _layers(self.actor), strict=True):
                linear.weight.copy_(layer.weight[s].t())
                linear.bias.copy_(layer.bias[s, 0])
            rows = slice(s * self.n, (s + 1) * self.n)
            for mine, theirs in ((self.critic, agent.critic), (self.critic_target, agent.critic_target)):
                for src, dst in zip(_layers(mine), _layers(theirs), strict=True):
                    dst.weight.copy_(src.weight[rows])
                    dst.bias.copy_(src.bias[rows])
            agent.log_alpha.copy_(self.log_alpha[s])

    def set_actor_lr_for_epoch(self, epoch: int, epochs: int) -> None:
        for group in self.actor_opt.param_groups:
            group["lr"] = actor_lr(self.cfg, epoch, epochs)

    # ------------------------------------------------------------ networks
    def _policy(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Sampled actions ``[S, B, A]`` and their log-probabilities ``[S, B]``; seed s's noise from its
        own generator, drawn as :class:`trials.agent.sac.Actor` draws it."""
        mean, log_std = self.actor(obs).chunk(2, dim=-1)
        log_std = log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)
        eps = torch.stack([torch.randn(mean.shape[1:], generator=g, device=mean.device, dtype=mean.dtype)
                           for g in self.gens])
        pre = mean + log_std.exp() * eps
        return torch.tanh(pre), squashed_log_prob(pre, eps, log_std)

    def _q(self, net: EnsembleMLP, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """``[S, N, B]`` from ``[S, B, .]`` inputs."""
        x = torch.cat([obs, act], dim=-1)
        s, b, d = x.shape
        x = x.unsqueeze(1).expand(s, self.n, b, d).reshape(s * self.n, b, d)
        return net(x).view(s, self.n, b)

    # ------------------------------------------------------------ the update
    def update(self, obs: torch.Tensor, act: torch.Tensor, rew: torch.Tensor, next_obs: torch.Tensor,
               done: torch.Tensor) -> dict[str, torch.Tensor]:
        """One gradient step for every seed on its own batch (leading dim S: ``obs`` ``[S, B, obs_dim]``,
        ``rew`` and ``done`` ``[S, B]``); returns the per-seed losses ``[S]`` (tensors, no host sync)."""
        cfg = self.cfg
        alpha = self.log_alpha.exp().detach().unsqueeze(1)  # [S, 1]
        with torch.no_grad():
            next_act, next_logp = self._policy(next_obs)
            q_next = self._q(self.critic_target, next_obs, next_act).min(1).values
            if not cfg.deterministic_backup:
                q_next = q_next - alpha * next_logp
            target = rew + cfg.gamma * (1.0 - done) * q_next
            if cfg.target_floor is not None:
                target = target.clamp_min(cfg.target_floor)
        q = self._q(self.critic, obs, act)
        critic_loss = (q - target.unsqueeze(1)).pow(2).mean(2).sum(1)  # [S]: each seed's, as SAC's
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.sum().backward()
        self.critic_opt.step()

        new_act, logp = self._policy(obs)
        self.critic.requires_grad_(False)
        q_pi = self._q(self.critic, obs, new_act).min(1).values
        self.critic.requires_grad_(True)
        actor_loss = (alpha * logp - q_pi).mean(1)
        self.actor_opt.zero_grad(set_to_none=True)
        actor_loss.sum().backward()
        self.actor_opt.step()

        if cfg.auto_alpha:
            alpha_loss = -(self.log_alpha.unsqueeze(1) * (logp.detach() + self.target_entropy)).mean(1)
            self.alpha_opt.zero_grad(set_to_none=True)
            alpha_loss.sum().backward()
            self.alpha_opt.step()
        with torch.no_grad():
            torch._foreach_lerp_(self._target_params, self._critic_params, cfg.tau)
        return {"critic_loss": critic_loss.detach(), "actor_loss": actor_loss.detach(),
                "q_mean": q.detach().mean((1, 2)), "alpha": alpha.squeeze(1)}
