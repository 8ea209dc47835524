"""A sweep's pool phase: every dynamics pool its trials load, trained once as Ray tasks before they start.

A sweep on fewer (dataset, seed) pools than the cluster has task slots leaves slots idle for a whole pool
training (a study's one-seed sweep on two cores: one core for an hour or more). Those slots train *spare*
pools, ones a later stage will load (a study passes its comparison's fresh seeds; those already stored
are left out): started beside the sweep's own, not waited for before the trials, and collected when the
sweep ends. A spare pool is the pool that stage would train (same dataset, seed and dynamics config, so
the same key); the file lock keeps two trainers of one pool from both training it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import ray
from ray.exceptions import RayError

from trials.config import TrialConfig
from trials.data.dataset import Dataset
from trials.models.pool import load_or_train_pool


@dataclass(frozen=True)
class PoolJob:
    """One pool to load or train: the dataset (a Ray object reference), the seed, and the trial config
    whose ``dynamics``, ``pool_dir`` and ``device`` say how and where."""

    dataset: ray.ObjectRef
    seed: int
    base: TrialConfig


@ray.remote(num_cpus=1)
def _train_pool(ds: Dataset, seed: int, base: TrialConfig) -> str:
    import torch  # noqa: PLC0415

    torch.set_num_threads(1)
    _, info = load_or_train_pool(ds, seed, base.dynamics, Path(base.pool_dir or ""), base.device)
    return f"{info.key}: {'trained' if info.trained_here else 'loaded'} ({info.train_seconds:.0f} s)"


def task_slots(gpus_per_task: float) -> int:
    """Pool trainings the cluster runs at once: one CPU each (and ``gpus_per_task`` GPUs when set)."""
    resources = ray.cluster_resources()
    slots = int(resources.get("CPU", 0))
    if gpus_per_task:
        slots = min(slots, int(resources.get("GPU", 0) / gpus_per_task))
    return max(slots, 1)


def idle_slots(jobs: int, slots: int) -> int:
    """Slots ``jobs`` trainings leave idle in their last round on ``slots`` slots (0 with no job)."""
    return -jobs % slots


def train_pools(jobs: list[PoolJob], spare: list[PoolJob], gpus_per_task: float) -> list[ray.ObjectRef]:
    """Train (or load) every pool of ``jobs`` and wait for them, printing a line each. As many ``spare``
    jobs as fit in the slots ``jobs`` leave idle start beside them; returns those, not waited for
    (:func:`collect_spare`)."""
    task = _train_pool.options(num_gpus=gpus_per_task) if gpus_per_task else _train_pool
    own = [task.remote(job.dataset, job.seed, job.base) for job in jobs]
    started = spare[:idle_slots(len(jobs), task_slots(gpus_per_task))]
    extra = [task.remote(job.dataset, job.seed, job.base) for job in started]
    for line in ray.get(own):
        print(f"pool {line}", flush=True)
    for job in started:
        print(f"pool for seed {job.seed}: training beside the trials, for a later stage", flush=True)
    return extra


def collect_spare(refs: list[ray.ObjectRef]) -> None:
    """Wait for the spare trainings :func:`train_pools` started. One that failed is reported, not raised:
    the stage that needs the pool trains it (from the progress the failed training saved)."""
    for ref in refs:
        try:
            print(f"pool {ray.get(ref)} (spare)", flush=True)
        except RayError as exc:
            print(f"note: a spare pool training failed ({str(exc).strip().splitlines()[0]}); the stage that needs "
                  f"the pool trains it", flush=True)
