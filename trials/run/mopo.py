"""The offline MBRL trial loop (MOPO family), one epoch at a time.

Per epoch: ``steps_per_epoch`` SAC updates on batches mixing ``real_ratio`` real transitions with model
transitions; a rollout round every ``rollout.freq`` updates refills the model buffer (a ring that keeps
``rollout.retain_epochs`` epochs of rollouts); every ``eval_every`` epochs (and at the last) the
deterministic policy is evaluated in the real MuJoCo env. The whole state (networks, optimisers, model
buffer, RNGs) is a ``state_dict``, so a run resumed from a checkpoint continues to the same results.

Score: the mean D4RL-normalised score of the last ``score_window`` evaluations (1: the latest one).
The rollout model is the trial's members of the shared pool, or the real simulator with
``dynamics.kind: true`` (:mod:`trials.rollouts.true_dynamics`). MOBILE's penalty (``penalty: mobile``) is applied
to each batch's model rows at update time (:mod:`trials.agent.mobile`); the other penalties at rollout time.

Divergence rule: NaN or inf in a SAC loss or Q-value ends the trial with status ``diverged``; its
reported score is that of its last finite evaluations, or 0.0 (the D4RL random-policy level) if none.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from trials.agent.mobile import bellman_penalty
from trials.agent.sac import SAC, SACStats
from trials.config import UPDATE_TIME_PENALTIES, TrialConfig, torch_device
from trials.data.dataset import Dataset
from trials.measure.evaluation import evaluate
from trials.models.dynamics import EnsembleDynamics
from trials.models.nets import seeded
from trials.models.pool import PoolInfo, select_members
from trials.rollouts.penalties import get_penalty
from trials.rollouts.replay import ReplayBuffer
from trials.rollouts.rollout import RolloutStats, rollout
from trials.rollouts.true_dynamics import Simulator, true_rollout

RUNNING, FINISHED, DIVERGED = "running", "finished", "diverged"

def device_clock(device: torch.device) -> float:
    """``time.perf_counter()`` once the device's queued work is done: CUDA kernels run asynchronously, so
    a clock read without synchronising times their launch, not their work. Read at phase boundaries only
    (a rollout round, an evaluation, an epoch's updates), never per update."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()



@dataclass
class _Epoch:
    """What an epoch accumulates between :meth:`MOPOTrainer.start_epoch` and ``finish_epoch``."""

    stats: SACStats
    update_penalty: torch.Tensor
    """MOBILE's penalty over the epoch's penalised rows: [sum, max]."""
    rollouts: list[RolloutStats] = field(default_factory=list)
    sac_seconds: float = 0.0
    penalised_rows: int = 0


class MOPOTrainer:
    """One trial's learner: the selected dynamics members (or the simulator), SAC, the real and model
    buffers. ``pool`` is None exactly when ``dynamics.kind`` is ``true``."""

    def __init__(self, cfg: TrialConfig, dataset: Dataset, pool: EnsembleDynamics | None,
                 pool_info: PoolInfo) -> None:
        self.cfg = cfg
        self.spec = dataset.spec
        self.device = torch_device(cfg.device)
        with seeded(cfg.seed, self.device):  # the networks' initial weights, from the trial's seed
            self._build(dataset, pool, pool_info)

    def _build(self, dataset: Dataset, pool: EnsembleDynamics | None, pool_info: PoolInfo) -> None:
        cfg = self.cfg
        self.gen = torch.Generator(device=self.device).manual_seed(cfg.seed)
        self.model: EnsembleDynamics | None = None
        self.sim: Simulator | None = None
        if pool is not None:
            self.model, self.elites = select_members(pool.to(self.device), cfg.num_models, cfg.num_elites)
        else:
            if dataset.qpos is None or dataset.qvel is None:
                raise ValueError(f"{cfg.dataset}: dynamics.kind=true starts rollouts at the stored simulator "
                                 f"states, and this dataset has no infos/qpos and infos/qvel")
            self.sim = Simulator(self.spec)
            self.qpos, self.qvel = np.asarray(dataset.qpos, np.float64), np.asarray(dataset.qvel, np.float64)
        self.pool_info = pool_info
        self.penalty = get_penalty("none" if cfg.penalty in UPDATE_TIME_PENALTIES else cfg.penalty)
        self.agent = SAC(self.spec.obs_dim, self.spec.act_dim, cfg.sac, self.device, seed=cfg.seed + 1)
        self.real = ReplayBuffer(len(dataset), self.spec.obs_dim, self.spec.act_dim, self.device)
        t = lambda a: torch.as_tensor(a, dtype=torch.float32, device=self.device)  # noqa: E731
        self.real.add_batch(t(dataset.observations), t(dataset.actions), t(dataset.rewards),
                            t(dataset.next_observations), t(dataset.terminals))
        rounds_per_epoch = math.ceil(cfg.steps_per_epoch / cfg.rollout.freq)
        capacity = cfg.rollout.batch_size * cfg.rollout.horizon * cfg.rollout.retain_epochs * rounds_per_epoch
        self.model_buffer = ReplayBuffer(capacity, self.spec.obs_dim, self.spec.act_dim, self.device)
        self.epoch = 0
        self.updates = 0
        self.status = RUNNING
        self.last_eval: dict[str, float] = {}
        self.history: list[dict[str, Any]] = []
        self.phase_seconds: dict[str, float] = defaultdict(float)
        self.phase_seconds["pool"] = pool_info.train_seconds if pool_info.trained_here else 0.0

    # ------------------------------------------------------------ one epoch
    def _rollout_round(self) -> RolloutStats:
        idx = self.real.sample_idx(self.cfg.rollout.batch_size, self.gen)
        if self.sim is not None:
            rows = idx.cpu().numpy()
            return true_rollout(self.sim, self.agent, self.real.obs[idx], self.qpos[rows], self.qvel[rows],
                                self.cfg.rollout.horizon, self.model_buffer)
        assert self.model is not None
        return rollout(self.model, self.elites, self.agent, self.real.obs[idx], self.cfg.rollout.horizon,
                       self.spec.terminated, self.penalty, self.cfg.lam, self.model_buffer, self.gen,
                       precision=self.cfg.rollout.precision)

    def _batch(self) -> tuple[tuple[torch.Tensor, ...], int]:
        """A SAC batch (real rows first) and how many of its rows are real."""
        n = self.cfg.sac.batch_size
        n_real = n if len(self.model_buffer) == 0 else int(round(n * self.cfg.real_ratio))
        real = self.real.sample(n_real, self.gen)
        if n_real == n:
            return real, n_real
        fake = self.model_buffer.sample(n - n_real, self.gen)
        return tuple(torch.cat([a, b]) for a, b in zip(real, fake, strict=False)), n_real

    def _mobile_penalty(self, batch: tuple[torch.Tensor, ...], n_real: int) -> torch.Tensor:
        """Penalise the batch's model rows by MOBILE's ``u(s, a)`` in place; returns ``u``."""
        obs, act, rew = batch[0][n_real:], batch[1][n_real:], batch[2]
        assert self.model is not None
        u = bellman_penalty(self.model, self.elites, self.agent, obs, act, self.cfg.mobile_samples, self.gen)
        rew[n_real:] -= self.cfg.lam * u
        return u

    # ------------------------------------------------------------ one epoch, in steps
    def start_epoch(self) -> None:
        """Begin an epoch: the actor's learning rate for it and fresh accumulators."""
        self.agent.set_actor_lr_for_epoch(self.epoch, self.cfg.epochs)
        self._ep = _Epoch(self.agent.new_stats(), torch.zeros(2, device=self.device))

    @property
    def rollout_due(self) -> bool:
        return self.updates % self.cfg.rollout.freq == 0

    def next_batch(self) -> tuple[torch.Tensor, ...]:
        """The next update's batch, after a rollout round when one is due (MOBILE's penalty applied)."""
        if self.rollout_due:
            start = device_clock(self.device)
            self._ep.rollouts.append(self._rollout_round())
            self.phase_seconds["rollout"] += device_clock(self.device) - start
        batch, n_real = self._batch()
        if self.cfg.penalty in UPDATE_TIME_PENALTIES and n_real < len(batch[0]):
            u = self._mobile_penalty(batch, n_real)
            self._ep.update_penalty[0] += u.sum()
            self._ep.update_penalty[1] = torch.maximum(self._ep.update_penalty[1], u.max())
            self._ep.penalised_rows += len(batch[0]) - n_real
        return batch

    def count_update(self, losses: dict[str, torch.Tensor]) -> None:
        """Record one update made for this seed by a batched learner (its losses)."""
        self._ep.stats.add(losses["critic_loss"], losses["actor_loss"], losses["q_mean"], losses["alpha"])
        self.updates += 1

    def add_sac_seconds(self, seconds: float) -> None:
        """This epoch's time in SAC: its updates and their batches (the rollout rounds between them excluded)."""
        self._ep.sac_seconds += seconds

    def run_epoch(self) -> dict[str, Any]:
        """Train one epoch, evaluate if due; returns the epoch's metrics (also kept in ``history``)."""
        self.start_epoch()
        rollout_before = self.phase_seconds["rollout"]
        start = device_clock(self.device)
        for _ in range(self.cfg.steps_per_epoch):
            batch = self.next_batch()
            self.agent.update(*batch, stats=self._ep.stats)
            self.updates += 1
        self.add_sac_seconds(device_clock(self.device) - start - (self.phase_seconds["rollout"] - rollout_before))
        return self.finish_epoch()

    def finish_epoch(self) -> dict[str, Any]:
        """End the epoch (its updates done, by :meth:`run_epoch` or a seed group): evaluate if due, record
        and return the metrics."""
        cfg, ep = self.cfg, self._ep
        stats, rollouts, sac_seconds = ep.stats, ep.rollouts, ep.sac_seconds
        update_penalty, penalised_rows = ep.update_penalty, ep.penalised_rows
        self.phase_seconds["sac"] += sac_seconds
        self.epoch += 1
        metrics: dict[str, Any] = {"epoch": self.epoch, **stats.means()}
        evaluated = False
        if not stats.finite():
            self.status = DIVERGED
        elif self.epoch % cfg.eval_every == 0 or self.epoch == cfg.epochs:
            evaluated = True
            start = device_clock(self.device)
            returns = evaluate(self.agent, self.spec, cfg.eval_episodes, seed=cfg.seed * 100_003 + self.epoch * 101)
            self.phase_seconds["eval"] += device_clock(self.device) - start
            ret = float(returns.mean())
            metrics["episode_returns"] = [float(r) for r in returns]  # the learning curve's raw data
            self.last_eval = {"return_mean": ret, "return_std": float(returns.std()),
                              "normalized_score": float(self.spec.normalized_score(ret))
                              if self.spec.random_score is not None else ret}
        if self.status == RUNNING and self.epoch >= cfg.epochs:
            self.status = FINISHED
        if rollouts:
            total = sum(r.transitions for r in rollouts)
            metrics.update(
                penalty_mean=sum(r.penalty_mean * r.transitions for r in rollouts) / max(total, 1),
                penalty_max=max(r.penalty_max for r in rollouts),
                model_reward_mean=sum(r.raw_reward_mean * r.transitions for r in rollouts) / max(total, 1),
                rollout_terminated_fraction=float(np.mean([r.terminated_fraction for r in rollouts])),
                rollout_length=float(np.mean([r.mean_length for r in rollouts])),
                rollout_nonfinite=sum(r.nonfinite for r in rollouts),
            )
        if penalised_rows:  # the penalty applied at update time is the epoch's penalty
            metrics["penalty_mean"] = float(update_penalty[0]) / penalised_rows
            metrics["penalty_max"] = float(update_penalty[1])
        metrics.update(
            normalized_score=self.last_eval.get("normalized_score", 0.0),
            return_mean=self.last_eval.get("return_mean", float("nan")),
            return_std=self.last_eval.get("return_std", float("nan")),
            evaluated=evaluated,
            model_holdout_mse=float(self.model.holdout_loss.mean()) if self.model is not None else 0.0,
            model_buffer_size=len(self.model_buffer),
            updates_per_sec=cfg.steps_per_epoch / max(sac_seconds, 1e-9),
            status=self.status,
            **{f"time_{k}": v for k, v in self.phase_seconds.items()},
        )
        metrics["score"] = self._score(metrics)
        self.history.append(metrics)
        return metrics

    def _score(self, metrics: dict[str, Any]) -> float:
        """The trial's score: the mean normalised score of its last ``score_window`` evaluations (0.0, the
        random-policy level, before the first)."""
        scores = [h["normalized_score"] for h in self.history if h["evaluated"]]
        if metrics["evaluated"]:
            scores.append(metrics["normalized_score"])
        window = scores[-self.cfg.score_window:]
        return float(np.mean(window)) if window else 0.0

    @property
    def done(self) -> bool:
        return self.status != RUNNING

    # ------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything a resume needs. An ended trial (finished or diverged) never rolls out again, so its
        model buffer (up to gigabytes: batch x horizon x retained epochs) is left out of its state."""
        mb = self.model_buffer
        n = 0 if self.done else mb.size
        return {
            "agent": self.agent.state_dict(),
            "optimizers": [o.state_dict() for o in (self.agent.actor_opt, self.agent.critic_opt,
                                                    self.agent.alpha_opt)],
            "model_buffer": {"obs": mb.obs[:n].clone(), "act": mb.act[:n].clone(), "rew": mb.rew[:n].clone(),
                             "next_obs": mb.next_obs[:n].clone(), "done": mb.done[:n].clone(),
                             "ptr": mb.ptr, "size": n},
            "gen": self.gen.get_state(),
            "agent_gen": self.agent.gen.get_state(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else [],
            "epoch": self.epoch, "updates": self.updates, "status": self.status,
            "last_eval": self.last_eval, "history": self.history, "phase_seconds": dict(self.phase_seconds),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.agent.load_state_dict(state["agent"])
        optimizers = (self.agent.actor_opt, self.agent.critic_opt, self.agent.alpha_opt)
        for opt, saved_opt in zip(optimizers, state["optimizers"], strict=True):
            opt.load_state_dict(saved_opt)
        mb, saved = self.model_buffer, state["model_buffer"]
        n = saved["size"]
        for name in ("obs", "act", "rew", "next_obs", "done"):
            getattr(mb, name)[:n] = saved[name].to(self.device)
        mb.ptr, mb.size = saved["ptr"], n
        # Generator states are CPU byte tensors whatever the device (a state mapped elsewhere comes back).
        self.gen.set_state(state["gen"].cpu())
        self.agent.gen.set_state(state["agent_gen"].cpu())
        torch.set_rng_state(state["torch_rng"].cpu())
        if state["cuda_rng"]:
            torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda_rng"]])
        self.epoch, self.updates, self.status = state["epoch"], state["updates"], state["status"]
        self.last_eval, self.history = state["last_eval"], state["history"]
        self.phase_seconds = defaultdict(float, state["phase_seconds"])
