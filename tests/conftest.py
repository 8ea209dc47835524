"""Shared fixtures: small real datasets generated once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from trials.dataset import Dataset, load_hdf5, save_hdf5
from trials.envs import ENVS
from trials.generate import GenerateConfig, generate

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def hopper_random_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real hopper-random dataset of 3,000 transitions, generated in MuJoCo."""
    path = tmp_path_factory.mktemp("data") / "hopper-random.hdf5"
    ds = generate(ENVS["hopper"], "random", 3000, seed=0, cfg=GenerateConfig(), policy_dir=path.parent,
                  progress=False)
    save_hdf5(ds, path)
    return path


@pytest.fixture
def hopper_random(hopper_random_file: Path) -> Dataset:
    return load_hdf5(hopper_random_file)
