"""Group ``pool``: dynamics-pool training in float32 against bfloat16 (``dynamics.precision``), in one run.

- ``pool_epoch[bfloat16]``: one training epoch of MOPO's pool (7 members of 4 x 200, batch 256) on a
  random dataset of ``pool_epoch_size`` transitions, bfloat16 against float32 interleaved, median of
  ``pool_epoch_repeats`` each (an epoch here is ``fit`` with ``max_epochs=1``: its batches, the holdout
  error and the bookkeeping around them).
- ``pool_to_stop[bfloat16]``: a whole pool trained to early stopping on ``pool_stop_size`` transitions,
  float32 then bfloat16 on the same seed, with what the formats change: epochs to stopping, holdout MSE
  per member in the data's units, held-out member disagreement.

Which bfloat16 path ran is in the row: autocast where the CPU has AVX512-BF16 or AMX, else bfloat16 numbers
computed in float32 arithmetic (``trials.models.precision``); ``MBRL_TUNE_BFLOAT16=emulate`` forces the
latter, to measure it on a host that has both.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.data import hopper_random
from benchmarks.report import Row
from benchmarks.sizes import Sizes
from benchmarks.timing import measure_interleaved
from trials.config import DynamicsConfig
from trials.data.dataset import Dataset, load_dataset
from trials.models.dynamics import EnsembleDynamics, FitResult, fit
from trials.models.nets import seeded
from trials.models.precision import native_bfloat16

MOPO = DynamicsConfig(pool_size=7)


def _path() -> str:
    return ("autocast (native bfloat16)" if native_bfloat16(torch.device("cpu"))
            else "bfloat16 numbers in float32 arithmetic (no native bfloat16 here, or MBRL_TUNE_BFLOAT16=emulate)")


def _fit(ds: Dataset, cfg: DynamicsConfig, seed: int = 0) -> tuple[FitResult, float]:
    """What a pool training does (``trials.models.pool``), without storing the pool."""
    device = torch.device("cpu")
    with seeded(seed, device):
        model = EnsembleDynamics(cfg.pool_size, ds.spec.obs_dim, ds.spec.act_dim, cfg.hidden, cfg.layers)
    t = {name: torch.as_tensor(getattr(ds, name)) for name in ("observations", "actions", "rewards",
                                                                "next_observations")}
    start = time.perf_counter()
    result = fit(model, t["observations"], t["actions"], t["rewards"], t["next_observations"], cfg, seed)
    return result, time.perf_counter() - start


def pool_epoch(sizes: Sizes, data_dir: Path) -> Row:
    ds = load_dataset(hopper_random(data_dir, sizes.pool_epoch_size))
    one = {p: MOPO.model_copy(update={"precision": p, "max_epochs": 1, **sizes.pool_overrides})
           for p in ("float32", "bfloat16")}
    t = measure_interleaved({p: (lambda p=p: _fit(ds, one[p])) for p in one}, sizes.pool_epoch_repeats, warmup=1)
    return Row(
        "pool_epoch[bfloat16]", "pool", t["bfloat16"].median, "s/epoch", t["bfloat16"].repeats,
        f"one epoch of dynamics-pool training (trials.models.dynamics.fit, max_epochs=1) with "
        f"dynamics.precision=bfloat16 ({_path()}): {one['bfloat16'].pool_size} members of "
        f"{one['bfloat16'].layers}x{one['bfloat16'].hidden}, batch {one['bfloat16'].batch_size}, "
        f"{len(ds):,} hopper-random transitions",
        baseline="float32", baseline_what="the same epoch with dynamics.precision=float32, interleaved",
        baseline_value=t["float32"].median,
        details={"bfloat16": t["bfloat16"].summary(), "float32": t["float32"].summary()},
    )


def pool_to_stop(sizes: Sizes, data_dir: Path) -> Row:
    ds = load_dataset(hopper_random(data_dir, sizes.pool_stop_size))
    results = {}
    for precision in ("float32", "bfloat16"):
        cfg = MOPO.model_copy(update={"precision": precision, **sizes.pool_overrides})
        result, seconds = _fit(ds, cfg)
        results[precision] = {
            "seconds": seconds, "epochs": result.epochs, "seconds_per_epoch": seconds / result.epochs,
            "holdout_mse_raw": [round(v, 6) for v in result.holdout_mse_raw],
            "holdout_mse_raw_mean": float(np.mean(result.holdout_mse_raw)),
            "holdout_mse_std_units_mean": float(np.mean(result.holdout_mse_std)),
            "disagreement": result.disagreement,
        }
        print(f"  pool to early stopping, {precision}: {result.epochs} epochs in {seconds:.0f} s", flush=True)
    f32, bf16 = results["float32"], results["bfloat16"]
    cfg = MOPO.model_copy(update=sizes.pool_overrides)
    return Row(
        "pool_to_stop[bfloat16]", "pool", bf16["seconds"], "s/pool", 1,
        f"a whole pool trained to early stopping with dynamics.precision=bfloat16 ({_path()}): "
        f"{cfg.pool_size} members of {cfg.layers}x{cfg.hidden}, patience {cfg.patience}"
        f"{f', at most {cfg.max_epochs} epochs' if cfg.max_epochs else ''}, "
        f"{len(ds):,} hopper-random transitions, seed 0",
        baseline="float32", baseline_what="the same pool, same seed, dynamics.precision=float32 (run first)",
        baseline_value=f32["seconds"],
        details={"bfloat16": bf16, "float32": f32,
                 "holdout_mse_ratio": bf16["holdout_mse_raw_mean"] / f32["holdout_mse_raw_mean"],
                 "epochs_ratio": bf16["epochs"] / f32["epochs"]},
    )


def pool_rows(sizes: Sizes, data_dir: Path) -> list[Row]:
    return [pool_epoch(sizes, data_dir), pool_to_stop(sizes, data_dir)]
