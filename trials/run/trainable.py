"""The Ray Tune function trainable: one trial of a sweep, a comparison or a confirmation.

Ray Tune passes a config dict ``{"base": <full TrialConfig dict>, "seeds": [0, 1], <dotted key>: value,
...}``: the dotted keys (the searcher's suggestion) override the base. Several seeds run in lockstep, one
epoch each per report, their SAC updates batched into one learner where it applies
(:mod:`trials.run.seed_group`); the reported ``score`` is their mean, ``score_seed<S>`` each seed's. A config
with ``estimate.kinds`` adds, to its last report, the final policies' offline estimates the same way:
``score_fqe`` / ``score_model`` (mean over seeds) and ``score_fqe_seed<S>`` / ``score_model_seed<S>``.
"""

from __future__ import annotations

import pickle
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trials.data.dataset import Dataset, load_dataset
from trials.measure.offline import estimate_policies, floor_value, load_judge
from trials.run.build import build_trainer
from trials.run.mopo import DIVERGED, FINISHED, MOPOTrainer
from trials.run.params import TuneParams
from trials.run.seed_group import SeedGroup

CHECKPOINT_FILE = "trial_state.pt"
#: Key of the seed group's learner state in a checkpoint (beside the per-seed states keyed by seed).
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


def read_checkpoint(checkpoint: Any) -> dict[Any, Any] | None:
    """The seeds' states in a Tune checkpoint, on the CPU (each trainer copies its weights and buffers to
    its own device; generator states must stay CPU byte tensors, which a load mapped to CUDA would move),
    or None when it cannot be read (a crash or a full disk cut it short): the trial then starts over,
    which loses only its own unfinished epochs."""
    try:
        with checkpoint.as_directory() as d:
            return torch.load(Path(d) / CHECKPOINT_FILE, map_location="cpu", weights_only=False)
    except (OSError, EOFError, RuntimeError, pickle.UnpicklingError) as exc:
        print(f"checkpoint {checkpoint.path} unreadable ({type(exc).__name__}); the trial starts over", flush=True)
        return None


def tune_trainable(config: dict[str, Any], dataset: Dataset | None = None, pool_dir: str | None = None) -> None:
    """Ray Tune function trainable (pass the dataset with ``tune.with_parameters`` to share it). ``pool_dir``
    (also through ``with_parameters``, so a restored experiment gets the driver's current path, not the one
    stored with the trial's config) overrides the config's pool folder."""
    import ray  # noqa: PLC0415  (Ray is only needed inside a Tune run)
    from ray import tune  # noqa: PLC0415

    params = TuneParams.from_tune(config)
    torch.set_num_threads(params.threads)
    node_id = ray.get_runtime_context().get_node_id()  # which cluster node ran the trial
    cfg, seeds = params.trial_config(), params.run_seeds
    if pool_dir is not None:
        cfg = cfg.with_overrides({"pool_dir": pool_dir})
    ds = dataset if dataset is not None else load_dataset(cfg.dataset, cfg.env)
    trainers = {s: build_trainer(cfg.with_overrides({"seed": s}), ds) for s in seeds}
    checkpoint = tune.get_checkpoint()
    states = read_checkpoint(checkpoint) if checkpoint is not None else None
    if states is not None:
        for seed, trainer in trainers.items():
            trainer.load_state_dict(states[seed])
    # Two or more seeds: one batched learner for all of them (trials.run.seed_group), built after the seeds'
    # states are loaded so that it starts from them; its optimiser moments are in the checkpoint.
    group = SeedGroup(trainers) if len(trainers) > 1 and SeedGroup.supports(cfg) else None
    if group is not None and states is not None and GROUP_KEY in states:
        group.load_state_dict(states[GROUP_KEY])
    latest = {s: t.history[-1] for s, t in trainers.items() if t.history}
    if states is not None and latest and all(t.done for t in trainers.values()):
        # Restored from the checkpoint of its last epoch, whose report a killed driver never recorded: report
        # it again, or Tune would end the trial with the epoch before as its last result.
        tune.report({**combine(latest), **offline_scores(trainers, ds), "node_id": node_id})
    while not all(t.done for t in trainers.values()):
        if group is not None:
            latest.update(group.run_epoch())
        for seed, trainer in trainers.items():
            if group is None and not trainer.done:
                latest[seed] = trainer.run_epoch()
        metrics = combine(latest)
        metrics["node_id"] = node_id
        done = all(t.done for t in trainers.values())
        if done:
            metrics.update(offline_scores(trainers, ds))
        epoch = metrics["epoch"]
        if done or epoch % cfg.checkpoint_every == 0:
            with tempfile.TemporaryDirectory() as d:
                state: dict[Any, Any] = {s: t.state_dict() for s, t in trainers.items()}
                if group is not None:
                    state[GROUP_KEY] = group.state_dict()
                torch.save(state, Path(d) / CHECKPOINT_FILE)
                tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))
        else:
            tune.report(metrics)
