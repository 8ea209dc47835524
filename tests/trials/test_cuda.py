"""The same trial on CUDA, where a CUDA device exists (skipped on CPU-only machines)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from trials.config import TrialConfig
from trials.data.dataset import load_hdf5
from trials.run.build import build_trainer

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _cuda_config(dataset: Path, pool_dir: Path) -> TrialConfig:
    return TrialConfig(dataset=str(dataset), pool_dir=str(pool_dir), device="cuda", num_models=3, num_elites=2,
                       epochs=2, steps_per_epoch=30, eval_episodes=1,
                       rollout={"batch_size": 500, "horizon": 3, "freq": 15},
                       dynamics={"pool_size": 3, "hidden": 32, "layers": 2, "max_epochs": 2},
                       sac={"hidden": 32, "batch_size": 64})


def test_short_trial_runs_on_cuda(hopper_random_file: Path, tmp_path: Path) -> None:
    cfg = _cuda_config(hopper_random_file, tmp_path)
    trainer = build_trainer(cfg, load_hdf5(hopper_random_file))
    assert trainer.model.in_mean.device.type == "cuda" and trainer.model_buffer.obs.device.type == "cuda"
    while not trainer.done:
        metrics = trainer.run_epoch()
    assert trainer.status == "finished" and math.isfinite(metrics["normalized_score"])
    assert next(trainer.agent.parameters()).device.type == "cuda"


def test_seed_group_runs_on_cuda(hopper_random_file: Path, tmp_path: Path) -> None:
    from trials.run.seed_group import SeedGroup

    cfg = _cuda_config(hopper_random_file, tmp_path)
    ds = load_hdf5(hopper_random_file)
    group = SeedGroup({s: build_trainer(cfg.with_overrides({"seed": s}), ds) for s in range(4)})
    while not group.done:
        per_seed = group.run_epoch()
    assert len(per_seed) == 4 and all(math.isfinite(m["normalized_score"]) for m in per_seed.values())
    assert next(group.learner.parameters()).device.type == "cuda"
