"""Member disagreement on held-out data with and without bootstrap resampling (issue 10's fidelity check).

Trains (or loads) the dataset's pool twice, ``dynamics.bootstrap`` on and off, everything else as given,
and prints each pool's fit record: training epochs (to early stopping unless capped), holdout MSE in the
data's units and in target-std units, and the members' disagreement on the held-out rows (mean over rows
of the L2 norm over dimensions of the std across members of the predicted means, each dimension in
its std units; ``trials.models.dynamics.holdout_errors``).

    .venv/bin/python -m benchmarks.disagreement --dataset data/hopper-medium-100k.hdf5 --pool-dir runs/pools \\
        --set pool_size=10
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from trials.config import DynamicsConfig, parse_overrides
from trials.data.dataset import load_dataset
from trials.models.pool import load_or_train_pool


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True)
    p.add_argument("--pool-dir", required=True, help="where the pools are found or stored")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="dynamics fields, e.g. pool_size=10")
    args = p.parse_args()
    torch.set_num_threads(1)
    ds = load_dataset(args.dataset)
    base = DynamicsConfig(**parse_overrides(args.set))
    rows = {}
    for bootstrap in (False, True):
        cfg = base.model_copy(update={"bootstrap": bootstrap})
        _, info = load_or_train_pool(ds, args.seed, cfg, Path(args.pool_dir))
        rows[f"bootstrap={bootstrap}"] = {"key": info.key, "epochs": info.epochs,
                                          "train_seconds": round(info.train_seconds, 1), **info.fit}
    print(json.dumps({"dataset": args.dataset, "dynamics": base.model_dump(mode="json"), "pools": rows}, indent=2))


if __name__ == "__main__":
    main()
