"""Offline estimates of one trained policy, from the dataset alone (issue 27): what a trial reports after its
last epoch when its config asks (``estimate.kinds``), and what ``mbrl-tune estimate`` computes for a sweep's
finished trials. One rule for both, so the two agree.

- ``fqe``: fitted Q evaluation on the dataset's transitions (:mod:`trials.measure.fqe`);
- ``model``: the discounted return in an independent pool, the *judge* (:mod:`trials.measure.model_value`):
  the pool of seed :func:`judge_seed` of the same data and architecture, which the policy was not trained
  against.

Both are discounted returns from the dataset's initial states, in the data's reward units (not
D4RL-normalised): they rank policies of one dataset, which is what a search needs of them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from trials.config import EstimateConfig, TrialConfig
from trials.data.dataset import Dataset
from trials.measure.fqe import FQEConfig, Policy, fqe_batch
from trials.measure.model_value import ModelValueConfig, model_value
from trials.models.dynamics import EnsembleDynamics
from trials.models.pool import load_or_train_pool, pool_key

#: Critics trained at once by one batched FQE. ``python -m benchmarks.run --only fqe`` (2026-12-06, 2-core AMD
#: EPYC under heavy load): 4 policies batched 1.37x faster than one after another (medians; 1.50x by
#: minima), 16 batched 0.96x (1.20x by minima): the batched gathers of 16 policies' batches cost more than
#: the launches they save on a CPU.
FQE_BATCH = 4


@dataclass(frozen=True)
class Judge:
    """The independent pool of the model estimate, with its key."""

    pool: EnsembleDynamics
    key: str
    seed: int


def judge_seed(cfg: EstimateConfig, seeds: Sequence[int]) -> int:
    """The judge pool's seed for a trial that runs ``seeds``: the configured one, else one above the largest
    (the first fresh seed of the sweep's comparison). Raises ``ValueError`` when it is one of ``seeds``."""
    seed = cfg.judge_seed if cfg.judge_seed is not None else max(seeds) + 1
    if seed in seeds:
        raise ValueError(f"estimate.judge_seed={seed} is one of the trial's seeds {list(seeds)}: the model estimate "
                         f"needs a pool the policy was not trained against")
    return seed


def floor_value(cfg: EstimateConfig, data: Dataset) -> float:
    """The lowest value an estimate can take on ``data`` (its lowest reward, or 0, over ``1 - gamma``): what
    a trial whose every seed diverged reports for each estimator, so that a searcher learns the region is
    bad (a diverged policy is not estimated; its weights are not finite)."""
    return min(float(data.rewards.min()), 0.0) / (1 - cfg.gamma)


def load_judge(cfg: TrialConfig, data: Dataset, seeds: Sequence[int], digest: str | None = None) -> Judge:
    """The judge pool of a trial of ``cfg`` on ``data`` running ``seeds`` (trained and stored if missing;
    the pool file lock keeps two trainers of it from both training it)."""
    seed = judge_seed(cfg.estimate, seeds)
    pool, _ = load_or_train_pool(data, seed, cfg.dynamics, cfg.resolved_pool_dir, cfg.device)
    key = pool_key(digest or data.content_hash(), seed, cfg.dynamics)
    return Judge(pool, key, seed)


def estimate_policies(policies: Sequence[Policy], data: Dataset, cfgs: Sequence[TrialConfig], seeds: Sequence[int],
                      judges: Sequence[Judge | None], digest: str | None = None) -> list[dict[str, float]]:
    """``cfg.estimate.kinds`` of each policy (trained by its trial's seed, ``seeds[k]``; ``judges[k]`` is needed
    for ``model``), as ``{kind: value, kind_seconds: cost}``, for several policies of one dataset (a trial's
    seeds, or a sweep's trials): their FQEs batched, :data:`FQE_BATCH` critics at a time
    (``trials.measure.fqe.fqe_batch``: each gets what it would alone); the model estimates one by one.
    All must share one ``estimate`` config."""
    est = cfgs[0].estimate
    if any(c.estimate != est for c in cfgs):
        raise ValueError("estimate_policies: the policies' estimate configs differ; estimate them apart")
    digest = digest or data.content_hash()
    out: list[dict[str, float]] = [{} for _ in policies]
    if "fqe" in est.kinds:
        fqe_cfg = FQEConfig(steps=est.fqe_steps, gamma=est.gamma)
        for lo in range(0, len(policies), FQE_BATCH):
            chunk = slice(lo, lo + FQE_BATCH)
            results = fqe_batch(policies[chunk], data, fqe_cfg, seeds[chunk], device=cfgs[0].device)
            for values, result in zip(out[chunk], results, strict=True):
                values["fqe"], values["fqe_seconds"] = result.value, result.seconds
    if "model" in est.kinds:
        for values, policy, cfg, seed, judge in zip(out, policies, cfgs, seeds, judges, strict=True):
            if judge is None:
                raise ValueError("the model estimate needs the judge pool (load_judge)")
            start = time.perf_counter()
            trained_on = pool_key(digest, seed, cfg.dynamics)
            values["model"] = model_value(policy, data, judge.pool, judge.key, trained_on=trained_on,
                                          cfg=ModelValueConfig(gamma=est.gamma, elites=cfg.num_elites),
                                          seed=seed).discounted
            values["model_seconds"] = time.perf_counter() - start
    return out
