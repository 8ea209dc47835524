"""Offline estimates of a sweep's trials (issue 27): each finished trial's final policy (the weights in its
last checkpoint) valued from the dataset alone, beside the simulator score the sweep recorded, and how well
each estimate ranks the trials (``analysis.ope``).

- ``fqe``: fitted Q evaluation on the dataset (``trials.measure.fqe``);
- ``model``: the discounted return in an independent dynamics pool (``trials.measure.model_value``): the pool
  of the comparison's first fresh seed (``max(sweep seeds) + 1``), which no sweep trial trained against;
  trained here if it is not stored yet.

The rule is the one a trial of an ``--objective fqe|model`` sweep applies to itself at its end
(``trials.measure.offline``), each estimator seeded by the trial's seed: on such a sweep, the same values
up to float summation order (the FQEs of all trials are batched here, ``FQE_BATCH`` critics at a time; a long FQE
amplifies last-bit differences, e.g. 0.2% after 1,000 updates on the test's noisy data).

A trial of several seeds is estimated per seed and averaged, as its score is; as in a trial, a diverged seed is
left out, and a trial whose every seed diverged gets ``floor_value`` for each estimator. Written to
``<sweep>/estimates/<experiment>.json`` (the rows, each estimator's cost, and the agreement). Runs in this
process, no Ray: estimating is read-only on the sweep's trials.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from analysis.ope import ESTIMATES_DIR
from analysis.ranking import agreement
from trials.agent.sac import SAC
from trials.config import ESTIMATORS, EstimateConfig, TrialConfig
from trials.data.dataset import Dataset, load_dataset
from trials.files import atomic_write_text
from trials.measure.offline import Judge, estimate_policies, floor_value, judge_seed, load_judge
from trials.models.pool import pool_key
from trials.run.mopo import DIVERGED
from trials.run.trainable import CHECKPOINT_FILE
from tuner.errors import UsageError
from tuner.store.records import RAN_OUT, TrialRecord, read_trials
from tuner.store.spec import SweepSpec


def _final_states(record: TrialRecord) -> dict[int, dict[str, Any]] | None:
    """The trial's last checkpoint (``{seed: trainer state}``), or None when it kept none."""
    checkpoints = sorted(record.path.glob("checkpoint_*"))
    if not checkpoints or not (checkpoints[-1] / CHECKPOINT_FILE).is_file():
        return None
    states = torch.load(checkpoints[-1] / CHECKPOINT_FILE, map_location="cpu", weights_only=False)
    return {k: v for k, v in states.items() if isinstance(k, int)}


def _policy(cfg: TrialConfig, state: dict[str, Any], data: Dataset) -> Any:
    agent = SAC(data.spec.obs_dim, data.spec.act_dim, cfg.sac, "cpu")
    agent.load_state_dict(state["agent"])
    agent.requires_grad_(False)
    return lambda obs: agent.act(obs, deterministic=True)


def sweep_estimate_config(spec: SweepSpec, fqe_steps: int | None = None) -> EstimateConfig:
    """Both estimators with the sweep's own estimate settings (its ``estimate`` block: FQE steps, discount,
    judge seed; defaults where it set none), ``fqe_steps`` overriding: on an ``--objective`` sweep, what its
    trials computed."""
    own = EstimateConfig.model_validate(spec.base.get("estimate") or {})
    return own.model_copy(update={"kinds": ESTIMATORS, "judge_seed": judge_seed(own, spec.seeds),
                                  **({"fqe_steps": fqe_steps} if fqe_steps else {})})


def estimate_experiment(spec: SweepSpec, dataset: str, estimate: EstimateConfig) -> dict[str, Any]:
    """Estimate every finished trial of one dataset's experiment; returns what is written."""
    data = load_dataset(dataset)
    digest = data.content_hash()
    spec.verify_dataset(dataset, digest)
    judge_at = estimate.judge_seed
    judges: dict[str, Judge] = {}  # the judge's pool per architecture (by its key), loaded once
    trials: list[tuple[TrialRecord, list[int], list[int]]] = []  # (trial, seeds estimated, seeds diverged)
    policies, cfgs, seeds, judged = [], [], [], []
    skipped = []
    for record in read_trials(spec.experiment_dir(dataset)):
        if record.status not in RAN_OUT or not isinstance(record.last.get("score"), (int, float)):
            continue
        states = _final_states(record)
        if not states:
            skipped.append(record.name)
            continue
        cfg = record.trial_config().model_copy(update={"estimate": estimate, "device": "cpu",
                                                       "pool_dir": str(spec.pool_dir)})
        estimable = {seed: state for seed, state in sorted(states.items()) if state["status"] != DIVERGED}
        trials.append((record, sorted(estimable), sorted(set(states) - set(estimable))))
        judge_key = pool_key(digest, judge_at, cfg.dynamics)
        if estimable and judge_key not in judges:  # trained if missing: not for a trial with nothing to value
            judges[judge_key] = load_judge(cfg, data, sorted(states), digest)
        for seed, state in estimable.items():
            policies.append(_policy(cfg, state, data))
            cfgs.append(cfg)
            seeds.append(seed)
            judged.append(judges[judge_key])
    # Every trial's policies at once: their FQEs batched (trials.measure.offline.estimate_policies).
    values = iter(estimate_policies(policies, data, cfgs, seeds, judged, digest) if policies else [])
    rows = []
    floor = floor_value(estimate, data)
    for record, trial_seeds, diverged in trials:
        mine = [next(values) for _ in trial_seeds]
        rows.append({"trial": record.name, "score": float(record.last["score"]), "seeds": trial_seeds,
                     "diverged_seeds": diverged,
                     **{e: float(np.mean([v[e] for v in mine])) if mine else floor for e in ESTIMATORS},
                     **{f"{e}_seconds": round(sum(v[f"{e}_seconds"] for v in mine), 2) for e in ESTIMATORS}})
    scores = [r["score"] for r in rows]
    return {"experiment": spec.experiment_name(dataset),
            "settings": {"fqe_steps": estimate.fqe_steps, "gamma": estimate.gamma}, "judge_pool_seed": judge_at,
            "rows": rows, "without_checkpoint": skipped,
            "agreement": {e: asdict(agreement(scores, [r[e] for r in rows])) for e in ESTIMATORS}}


def estimate_sweep(sweep_dir: Path, fqe_steps: int | None = None, only: list[str] | None = None) -> dict[str, Path]:
    """Estimate the trials of every dataset of the sweep (``only``: file stems); returns the files written."""
    if not (Path(sweep_dir) / "sweep.json").is_file():
        raise UsageError(f"{sweep_dir}: not a sweep folder (no sweep.json)")
    spec = SweepSpec.load(sweep_dir)
    datasets = [d for d in spec.datasets if not only or Path(d).stem in only]
    if not datasets:
        raise UsageError(f"--dataset {' '.join(only or [])}: not in this sweep; it has "
                         f"{', '.join(Path(d).stem for d in spec.datasets)}")
    out = {}
    for dataset in datasets:
        result = estimate_experiment(spec, dataset, sweep_estimate_config(spec, fqe_steps))
        path = spec.root / ESTIMATES_DIR / f"{result['experiment']}.json"
        atomic_write_text(path, json.dumps(result, indent=2))
        out[dataset] = path
    return out
