"""Train walker2d-random's comparison pools beside the evidence study, on the core its own pool training
leaves idle: the product's load_or_train_pool with the study's dynamics config (read from the hopper-medium
sweep, whose base is the same), into the pool folder the walker2d sweep uses. A pool is keyed by dataset
hash, seed and config, so the study's comparison loads these instead of training them; the result is the
same pool it would train (same seed, same data, same config). Run from the repository root:

    python docs/results/pretrain_pools.py 1 2 3     # seeds; resumable like any pool training
"""
import sys
from pathlib import Path

import torch

from search_spaces.parse import load_space
from trials.data.dataset import load_dataset
from trials.models.pool import load_or_train_pool
from tuner.run.sweep import trial_base
from tuner.store.spec import SweepSpec

torch.set_num_threads(1)
study = Path("runs/studies/evidence/sweeps")
hopper = SweepSpec.load(study / "hopper-medium-100k")
dynamics = trial_base(hopper, hopper.datasets[0], load_space(hopper.root / "space.yaml")).dynamics
print("dynamics", dynamics.model_dump(mode="json"), flush=True)
ds = load_dataset("data/evidence/walker2d-random-100k.hdf5")
for seed in [int(s) for s in sys.argv[1:]]:
    _, info = load_or_train_pool(ds, seed, dynamics, study / "walker2d-random-100k" / "pools")
    print(f"seed {seed}: {info.key} {'trained' if info.trained_here else 'loaded'} {info.train_seconds:.0f} s "
          f"{info.epochs} epochs", flush=True)
