"""The shared dynamics pool: ``pool_size`` independently initialised members, trained once per
(dataset content, seed, architecture, pool size) and stored as an artifact under that key.

The ensemble does not depend on the penalty, lambda, the horizon or the real ratio, so every trial of a
sweep on the same (dataset, seed) loads the same pool. A file lock makes a second process asking for a
missing pool wait for the first one's training instead of training it again.

Member selection rule (documented, deterministic): members are ranked by holdout MSE, best first (ties by
index); a trial with ``N`` models uses the ``N`` best, and its ``E`` elites are the ``E`` best of those. So
ensembles are nested (the 5-model ensemble is part of the 7-model one), and elites are MOPO's.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock

from trials.config import DynamicsConfig, torch_device
from trials.data.dataset import Dataset
from trials.files import TORCH_READ_ERRORS, atomic_write
from trials.models.dynamics import EnsembleDynamics, FitResult, fit
from trials.models.nets import seeded


def pool_key(dataset_hash: str, seed: int, cfg: DynamicsConfig) -> str:
    """The artifact key: dataset content hash, seed, and every architecture/training setting (``kind``
    excepted: it says whether a pool is used at all; ``precision`` only when it is not float32: leaving both
    out keeps the keys of the pools stored before they existed)."""
    excluded = {"kind"} | ({"precision"} if cfg.precision == "float32" else set())
    blob = json.dumps([dataset_hash, seed, cfg.model_dump(mode="json", exclude=excluded)], sort_keys=True)
    return f"pool-{dataset_hash}-s{seed}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


@dataclass
class PoolInfo:
    key: str
    path: Path
    trained_here: bool
    """True when this call trained the pool (False when it was loaded)."""
    train_seconds: float
    """Seconds the pool's training took (as recorded at training time; summed over the runs of a training
    that was killed and continued, see :attr:`trials.models.dynamics.FitResult.seconds`)."""
    epochs: int
    """Training epochs the pool took (to early stopping unless ``max_epochs`` capped it)."""
    holdout_mse: list[float]
    """Per-member holdout MSE in the training targets' units (ranks members)."""
    fit: dict[str, Any] = field(default_factory=dict)
    """The rest of :class:`trials.models.dynamics.FitResult` (holdout MSE in the data's own units and in target
    std units, member disagreement); empty for pools stored before it was recorded."""

    @classmethod
    def simulator(cls) -> PoolInfo:
        """What a trial whose rollouts step the real simulator (``dynamics.kind: true``) reports."""
        return cls(key="true-dynamics", path=Path(), trained_here=False, train_seconds=0.0, epochs=0,
                   holdout_mse=[])


def _train(ds: Dataset, seed: int, cfg: DynamicsConfig, device: torch.device,
           progress_file: Path) -> tuple[EnsembleDynamics, FitResult]:
    spec = ds.spec
    with seeded(seed, device):
        model = EnsembleDynamics(cfg.pool_size, spec.obs_dim, spec.act_dim, cfg.hidden, cfg.layers).to(device)
    t = {name: torch.as_tensor(getattr(ds, name), device=device)
         for name in ("observations", "actions", "rewards", "next_observations")}
    result = fit(model, t["observations"], t["actions"], t["rewards"], t["next_observations"], cfg, seed,
                 checkpoint=progress_file)
    return model, result


PROGRESS_SUFFIX = ".progress.pt"


def progress_path(pool_dir: Path, key: str) -> Path:
    """Where the training of pool ``key`` saves its progress (hidden; removed when the pool is saved)."""
    return pool_dir / f".{key}{PROGRESS_SUFFIX}"


def trainings_in_progress(pool_dir: Path) -> dict[str, Path]:
    """``{pool key: progress file}`` of the trainings in ``pool_dir`` that have not finished."""
    return {p.name.removeprefix(".").removesuffix(PROGRESS_SUFFIX): p
            for p in sorted(pool_dir.glob(f".pool-*{PROGRESS_SUFFIX}"))}


def is_stored(ds: Dataset, seed: int, cfg: DynamicsConfig, pool_dir: Path) -> bool:
    """Whether the pool for (dataset, seed, cfg) is stored in ``pool_dir`` (loading it trains nothing)."""
    return (pool_dir / f"{pool_key(ds.content_hash(), seed, cfg)}.pt").is_file()


def load_or_train_pool(ds: Dataset, seed: int, cfg: DynamicsConfig, pool_dir: Path,
                       device: torch.device | str = "cpu") -> tuple[EnsembleDynamics, PoolInfo]:
    """The pool for (dataset, seed, cfg): loaded if stored, otherwise trained and stored (atomically,
    under a lock). The stored key is checked on load."""
    device = torch_device(device)
    dataset_hash = ds.content_hash()
    key = pool_key(dataset_hash, seed, cfg)
    pool_dir.mkdir(parents=True, exist_ok=True)
    path = pool_dir / f"{key}.pt"
    with FileLock(str(pool_dir / f"{key}.lock")):
        saved = read_pool(path, key) if path.exists() else None
        trained_here = saved is None
        if trained_here:
            progress_file = progress_path(pool_dir, key)  # a killed training continues from here
            model, result = _train(ds, seed, cfg, device, progress_file)
            seconds = result.seconds
            fit_info = {"holdout_mse_raw": result.holdout_mse_raw, "holdout_mse_std": result.holdout_mse_std,
                        "disagreement": result.disagreement, "train_nll": result.train_nll}
            saved = {"key": key, "config": cfg.model_dump(mode="json"), "state": model.state_dict(),
                     "epochs": result.epochs, "train_seconds": seconds, "fit": fit_info}
            atomic_write(path, partial(torch.save, saved))
            progress_file.unlink(missing_ok=True)
            with open(pool_dir / "trainings.log", "a") as log:  # one line per training, for audits
                log.write(f"{key} {seconds:.1f}s pid={os.getpid()}\n")
    spec = ds.spec
    model = EnsembleDynamics(cfg.pool_size, spec.obs_dim, spec.act_dim, cfg.hidden, cfg.layers).to(device)
    model.load_state_dict(saved["state"])
    info = PoolInfo(key, path, trained_here, float(saved["train_seconds"]), int(saved["epochs"]),
                    model.holdout_loss.tolist(), dict(saved.get("fit", {})))
    return model, info


#: What a stored pool holds; a file without all of it is not a whole pool.
POOL_FIELDS = ("key", "config", "state", "epochs", "train_seconds")


def read_pool(path: Path, key: str, then: str = "training it again") -> dict[str, Any] | None:
    """The pool stored in ``path`` for ``key``, or None when the file is damaged (truncated, zeroed, not a
    pool) or holds another pool: a pool is derived from the dataset, the seed and the config, so the
    caller trains it again; one line says so, and ``then`` what the caller does about it."""
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except TORCH_READ_ERRORS as exc:
        why = f"unreadable ({type(exc).__name__}: {str(exc).splitlines()[0][:80]})"
    else:
        if not isinstance(saved, dict) or not all(f in saved for f in POOL_FIELDS):
            why = "not a whole pool"
        elif saved["key"] != key:
            why = f"holds pool {saved['key']}"
        else:
            return saved
    print(f"pool {path}: {why}; {then}", flush=True)
    return None


def select_members(pool: EnsembleDynamics, num_models: int, num_elites: int) -> tuple[EnsembleDynamics, torch.Tensor]:
    """The trial's ensemble and the indices of its elites within it (see module docstring)."""
    losses = pool.holdout_loss.tolist()
    ranked = sorted(range(pool.members), key=lambda i: (losses[i], i))
    sub = pool.subset(ranked[:num_models])
    elites = torch.arange(num_elites, device=pool.in_mean.device)  # sub is ordered best first
    return sub, elites
