"""One trial's seeds, epoch by epoch, without Ray: what the Tune trainable (:mod:`trials.run.trainable`) drives
and reports, and what ``mbrl-tune verify`` re-runs in its own process to check a stored trial.

A trial runs its seeds in lockstep, one epoch each per report, their SAC updates batched into one learner
where it applies (:mod:`trials.run.seed_group`); the report (:func:`combine`) holds the seeds' mean
metrics, ``score`` (their mean) and ``score_seed<S>`` each seed's. A config with ``estimate.kinds`` adds,
to its last report, the final policies' offline estimates the same way (:func:`offline_scores`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from trials.data.dataset import Dataset
from trials.measure.offline import estimate_policies, floor_value, load_judge
from trials.run.build import build_trainer
from trials.run.mopo import DIVERGED, FINISHED, MOPOTrainer
from trials.run.params import TuneParams
from trials.run.seed_group import SeedGroup

#: Key of the seed group's learner state in a trial's state (beside the per-seed states keyed by seed).
GROUP_KEY = "seed_group"


def combine(per_seed: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """One report from the seeds' epoch metrics: numeric metrics averaged, per-seed scores kept, status
    ``diverged`` only if every seed diverged."""
    rows = list(per_seed.values())
    out: dict[str, Any] = {}
    for key, value in rows[0].items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        out[key] = float(np.mean([r[key] for r in rows if key in r]))
    out["epoch"] = int(max(r["epoch"] for r in rows))
    for seed, row in per_seed.items():
        out[f"score_seed{seed}"] = row["score"]
        if "episode_returns" in row:  # an evaluation epoch: each episode's return, for curves and bandits
            out[f"episode_returns_seed{seed}"] = list(row["episode_returns"])
    statuses = [r["status"] for r in rows]
    out["status"] = (DIVERGED if all(s == DIVERGED for s in statuses)
                     else FINISHED if all(s in (FINISHED, DIVERGED) for s in statuses) else "running")
    out["diverged_seeds"] = sum(s == DIVERGED for s in statuses)
    return out


def offline_scores(trainers: dict[int, MOPOTrainer], data: Dataset) -> dict[str, float]:
    """The final policies' offline estimates (``cfg.estimate.kinds``, :mod:`trials.measure.offline`), as
    report metrics: ``score_<kind>`` (mean over the seeds), ``score_<kind>_seed<S>``, ``<kind>_seconds``
    (their summed cost). A diverged seed (its weights not finite) is not estimated and is left out of the
    mean, as a diverged trial's score keeps its last finite value; when every seed diverged, ``score_<kind>``
    is :func:`~trials.measure.offline.floor_value`. Deterministic, so a trial resumed at its end reports the same
    values again."""
    cfg = next(iter(trainers.values())).cfg
    kinds = cfg.estimate.kinds
    if not kinds:
        return {}
    seeds = [s for s in sorted(trainers) if trainers[s].status != DIVERGED]
    out: dict[str, float] = {}
    if not seeds:
        return {f"score_{kind}": floor_value(cfg.estimate, data) for kind in kinds}
    digest = data.content_hash()
    judge = load_judge(cfg, data, sorted(trainers), digest) if "model" in kinds else None
    per_kind: dict[str, list[float]] = {k: [] for k in kinds}
    policies = [lambda obs, a=trainers[s].agent: a.act(obs, deterministic=True) for s in seeds]
    estimates = estimate_policies(policies, data, [trainers[s].cfg for s in seeds], seeds, [judge] * len(seeds),
                                  digest)
    for seed, values in zip(seeds, estimates, strict=True):
        for kind in kinds:
            per_kind[kind].append(values[kind])
            out[f"score_{kind}_seed{seed}"] = values[kind]
            out[f"{kind}_seconds"] = out.get(f"{kind}_seconds", 0.0) + values[f"{kind}_seconds"]
    for kind, values in per_kind.items():
        out[f"score_{kind}"] = float(np.mean(values))
    return out


class LockstepTrial:
    """A trial's seeds (each a :class:`~trials.run.mopo.MOPOTrainer`) and, for two or more seeds, their
    batched learner, built from the trial's Tune config and continued from ``states`` (a saved
    :meth:`state_dict`) when given. ``pool_dir`` overrides the config's pool folder."""

    def __init__(self, params: TuneParams, dataset: Dataset, pool_dir: str | None = None,
                 states: dict[Any, Any] | None = None) -> None:
        cfg = params.trial_config()
        if pool_dir is not None:
            cfg = cfg.with_overrides({"pool_dir": pool_dir})
        self.cfg = cfg
        self.dataset = dataset
        self.trainers = {s: build_trainer(cfg.with_overrides({"seed": s}), dataset) for s in params.run_seeds}
        if states is not None:
            for seed, trainer in self.trainers.items():
                trainer.load_state_dict(states[seed])
        # Built after the seeds' states are loaded so that it starts from them; its optimiser moments are in
        # the state too.
        many = len(self.trainers) > 1 and SeedGroup.supports(cfg)
        self.group = SeedGroup(self.trainers) if many else None
        if self.group is not None and states is not None and GROUP_KEY in states:
            self.group.load_state_dict(states[GROUP_KEY])
        self._latest = {s: t.history[-1] for s, t in self.trainers.items() if t.history}

    @property
    def done(self) -> bool:
        return all(t.done for t in self.trainers.values())

    @property
    def device(self) -> torch.device:
        return next(iter(self.trainers.values())).device

    def final_report(self) -> dict[str, Any] | None:
        """The last epoch's report again, for a trial continued from the state of its last epoch (a killed
        driver may never have recorded it); None unless every seed had ended in that state."""
        if not self._latest or not self.done:
            return None
        return {**combine(self._latest), **offline_scores(self.trainers, self.dataset)}

    def epochs(self) -> Iterator[dict[str, Any]]:
        """Run epoch after epoch until every seed has ended, yielding each epoch's report (the last one with
        the offline estimates)."""
        while not self.done:
            if self.group is not None:
                self._latest.update(self.group.run_epoch())
            for seed, trainer in self.trainers.items():
                if self.group is None and not trainer.done:
                    self._latest[seed] = trainer.run_epoch()
            metrics = combine(self._latest)
            if self.done:
                metrics.update(offline_scores(self.trainers, self.dataset))
            yield metrics

    def state_dict(self) -> dict[Any, Any]:
        """Every seed's state, keyed by seed, and the batched learner's under :data:`GROUP_KEY`."""
        state: dict[Any, Any] = {s: t.state_dict() for s, t in self.trainers.items()}
        if self.group is not None:
            state[GROUP_KEY] = self.group.state_dict()
        return state
