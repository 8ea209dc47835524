"""Building a trial's trainer from its config: the one place a :class:`~trials.config.TrialConfig` becomes
a running :class:`~trials.run.mopo.MOPOTrainer` (its shared dynamics pool loaded, or trained once). The Tune
trainable, the standalone run, the tests and the benchmarks all build through :func:`build_trainer`."""

from __future__ import annotations

from trials.config import TrialConfig
from trials.data.dataset import Dataset
from trials.memory import keep_freed_memory
from trials.models.pool import PoolInfo, load_or_train_pool
from trials.run.mopo import MOPOTrainer


def build_trainer(cfg: TrialConfig, dataset: Dataset) -> MOPOTrainer:
    """Load (or train, once) the shared pool for (dataset, seed, architecture), then set up the learner
    (no pool with ``dynamics.kind: true``: rollouts step the simulator)."""
    keep_freed_memory()
    if cfg.dynamics.kind == "true":
        return MOPOTrainer(cfg, dataset, None, PoolInfo.simulator())
    pool, info = load_or_train_pool(dataset, cfg.seed, cfg.dynamics, cfg.resolved_pool_dir, cfg.device)
    return MOPOTrainer(cfg, dataset, pool, info)
