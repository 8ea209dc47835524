"""A trial's seeds trained in lockstep by one batched learner (:class:`trials.agent.seed_batch.SeedBatchedSAC`).

Each seed keeps its own :class:`trials.run.mopo.MOPOTrainer` (its pool members, buffers, generators,
rollouts, evaluations, history and status); only the SAC updates are batched: every step, each live
seed draws its own batch (after its own rollout round when one is due), and one update steps all seeds.
Before rollouts and evaluations each seed's weights are written back into its own agent, so everything
per seed reads as it does when the seed runs alone. A seed that diverged stops (its status and history
freeze there); its slot in the batched networks keeps being fed a live seed's batch, which cannot touch
the other seeds (no term of the loss couples two seeds), until the trial ends.

Used when a trial has two or more seeds and the batched learner implements its update
(:meth:`SeedGroup.supports`: not EDAC's ``eta > 0`` and not MOBILE, whose penalty reads each seed's target
critics mid-epoch); other trials run their seeds one after another.
"""

from __future__ import annotations

from typing import Any

import torch

from trials.agent.seed_batch import SeedBatchedSAC
from trials.config import UPDATE_TIME_PENALTIES, TrialConfig
from trials.run.mopo import MOPOTrainer, device_clock


class SeedGroup:
    """The seeds of one trial (``{seed: trainer}``, same config but the seed) behind one learner."""

    def __init__(self, trainers: dict[int, MOPOTrainer]) -> None:
        self.trainers = trainers
        self.seeds = list(trainers)
        self.learner = SeedBatchedSAC.from_agents([t.agent for t in trainers.values()])

    @staticmethod
    def supports(cfg: TrialConfig) -> bool:
        return cfg.sac.eta == 0 and cfg.penalty not in UPDATE_TIME_PENALTIES

    @property
    def done(self) -> bool:
        return all(t.done for t in self.trainers.values())

    def _write_back(self) -> None:
        live = [i for i, t in enumerate(self.trainers.values()) if not t.done]
        agents = [t.agent for t in self.trainers.values()]
        self.learner.write_back(agents, only=live)

    def run_epoch(self) -> dict[int, dict[str, Any]]:
        """One epoch of every live seed; returns each one's epoch metrics."""
        trainers = list(self.trainers.values())
        live = [t for t in trainers if not t.done]
        first = live[0]
        for t in live:
            t.start_epoch()
        self.learner.set_actor_lr_for_epoch(first.epoch, first.cfg.epochs)
        rollouts_before = sum(t.phase_seconds["rollout"] for t in live)
        start = device_clock(first.device)
        for _ in range(first.cfg.steps_per_epoch):
            if first.rollout_due:
                self._write_back()  # rollouts act with the current policy
            batches = {id(t): t.next_batch() for t in live}
            parts = [batches.get(id(t), batches[id(first)]) for t in trainers]
            losses = self.learner.update(*(torch.stack(p) for p in zip(*parts, strict=True)))
            for i, t in enumerate(trainers):
                if not t.done:
                    t.count_update({k: v[i] for k, v in losses.items()})
        updates = device_clock(first.device) - start - (sum(t.phase_seconds["rollout"] for t in live) - rollouts_before)
        for t in live:  # each seed's share of the updates' time (the rollout rounds are each seed's own)
            t.add_sac_seconds(updates / len(live))
        self._write_back()  # evaluations and checkpoints read each seed's agent
        return {seed: t.finish_epoch() for seed, t in self.trainers.items() if t in live}

    # ------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """The batched learner's weights and optimiser moments (each trainer's own state holds the rest)."""
        opts = (self.learner.actor_opt, self.learner.critic_opt, self.learner.alpha_opt)
        return {"learner": self.learner.state_dict(), "optimizers": [o.state_dict() for o in opts]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.learner.load_state_dict(state["learner"])
        opts = (self.learner.actor_opt, self.learner.critic_opt, self.learner.alpha_opt)
        for opt, saved in zip(opts, state["optimizers"], strict=True):
            opt.load_state_dict(saved)
