"""The benchmark suite (issue 6): one command, one process run, one table (also saved as JSON).

    python -m benchmarks.run [--quick] [--out runs/bench/bench.json] [--only GROUP ...]

Every time is a median of repeats after warm-up, on ONE torch thread; every row that has a baseline
measured it in the same run at the same sizes, interleaved with ours where possible, so the ratios hold on
this shared, noisy 2-core machine even when absolute times drift. FLOPs are counted from layer sizes
(benchmarks/flops.py); "% of peak" is against the fp32 matmul peak measured at the start of the run.

Groups (``--only`` takes these; the matmul peak is always measured):

- ``sac``: SAC update vs stable-baselines3 (or a plain eager SAC without it)
- ``ensemble``: dynamics-ensemble training step vs a loop over separate members
- ``rollout``: one rollout round per penalty; max_aleatoric vs a loop-over-members rollout
- ``epoch``: pool training per epoch, one MOPO epoch (rollout/SAC split) and the trial's peak RSS, in a
  worker process (its composite baseline needs ``sac`` and ``rollout`` in the same run)
- ``methods``: SAC with 10 critics (and EDAC's eta) vs 2, MOBILE's update-time penalty vs the plain update,
  a true-simulator rollout round vs a learned-model one
- ``seeds``: one epoch of SAC updates for S = 1, 2, 4 seeds, the seed-batched learner vs S separate ones
- ``ax``: the Ax searcher's proposal time at 20 and 50 completed trials (paper.yaml, quick.yaml)
- ``ray``: Ray Tune's overhead per no-op trial, reuse_actors False/True
- ``sweeps``: trials per hour of real sweeps at concurrency 1 and 2, and the K-trial sweep cost with the
  shared pool vs a pool per trial
- ``seeds_bf16``: the seed-batched SAC update (S = 1, 2, 4) under bfloat16 autocast against float32
- ``seeds_compile``: the same update compiled whole with ``torch.compile`` against eager
- ``fqe``: fitted Q evaluation of K = 4 and 16 policies batched into one ensemble of critics against K
  separate evaluations (``benchmarks/ope.py``)
- ``pool``: a pool-training epoch on 100k transitions and a whole pool to early stopping (20k by default,
  ``--pool-stop-size``), float32 against bfloat16 (``benchmarks/pool.py``)

A full run takes about 10-15 minutes; ``--quick`` shrinks every size (a smoke test, well under a minute
for the groups without Ray; its numbers say nothing about speed).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from benchmarks import compute, engine, methods, ope, pool, seeds, tuning
from benchmarks.data import DEFAULT_DATA_DIR, hopper_random
from benchmarks.report import Row, format_notes, format_table, write_json
from benchmarks.sizes import Sizes, full, quick

GROUPS = ("sac", "ensemble", "rollout", "epoch", "methods", "seeds", "seeds_bf16", "seeds_compile", "pool", "fqe", "ax",
          "ray", "sweeps")
RAY_GROUPS = ("ray", "sweeps")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="shrink every size (smoke test; not a speed measurement)")
    p.add_argument("--out", default="runs/bench/bench.json", help="JSON output path (written atomically)")
    p.add_argument("--only", nargs="+", choices=GROUPS, metavar="GROUP",
                   help=f"run only these groups (of {', '.join(GROUPS)}); the matmul peak always runs")
    p.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR),
                   help="where the hopper-random datasets are found or generated")
    p.add_argument("--keep-work", action="store_true", help="keep the work folder (pools, sweeps, logs)")
    p.add_argument("--pool-stop-size", type=int, help="transitions of the pool the 'pool' group trains to early "
                   "stopping (default 20,000; a study's 100,000 takes 1-2 h per format)")
    return p.parse_args(argv)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def run_meta(sizes: Sizes, groups: list[str]) -> dict[str, Any]:
    """What the numbers were measured on."""
    return {
        "mode": "quick" if sizes.quick else "full",
        "mode_label": sizes.label,
        "groups": groups,
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
        "python": platform.python_version(),
        "versions": {name: _version(name) for name in ("torch", "stable-baselines3", "ray", "ax-platform", "numpy")},
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def run_groups(sizes: Sizes, groups: list[str], data_dir: Path, work_dir: Path) -> list[Row]:
    """Measure the matmul peak, then each selected group in order; rows get GFLOP/s and % of peak."""
    peak = compute.peak_matmul(sizes)
    rows = [peak]
    measured: dict[str, Row] = {peak.name: peak}

    def add(new: list[Row]) -> None:
        for row in new:
            row.with_peak(peak.gflops)
            rows.append(row)
            measured[row.name] = row
            _progress(row)

    steps: dict[str, Callable[[], list[Row]]] = {
        "sac": lambda: [compute.sac_update(sizes)],
        "ensemble": lambda: [compute.ensemble_step(sizes)],
        "rollout": lambda: compute.rollout_rounds(sizes),
        "epoch": lambda: engine.epoch_group(sizes, hopper_random(data_dir, sizes.dataset_size), work_dir, measured),
        "methods": lambda: methods.method_rows(sizes, data_dir),
        "seeds": lambda: [*seeds.seed_rows(sizes), *seeds.rollout_stack_rows(sizes)],
        "seeds_bf16": lambda: seeds.precision_rows(sizes),
        "seeds_compile": lambda: seeds.compile_rows(sizes),
        "fqe": lambda: ope.fqe_rows(sizes, hopper_random(data_dir, sizes.dataset_size)),
        "pool": lambda: pool.pool_rows(sizes, data_dir),
        "ax": lambda: tuning.ax_proposals(sizes),
    }
    _progress(peak)
    for group in [g for g in groups if g not in RAY_GROUPS]:
        add(steps[group]())
    ray_groups = [g for g in groups if g in RAY_GROUPS]
    if ray_groups:
        sweep_data = hopper_random(data_dir, sizes.sweep_dataset_size) if "sweeps" in ray_groups else None
        with tuning.local_ray():
            torch.set_num_threads(1)
            if "ray" in ray_groups:
                add(tuning.ray_overhead(sizes, work_dir))
            if sweep_data is not None:
                add(tuning.sweep_rows(sizes, sweep_data, work_dir, measured))
    return rows


def _progress(row: Row) -> None:
    print(f"  measured {row.name}", flush=True)


def quiet_warnings() -> None:
    """BoTorch warns when one of its acquisition-optimiser restarts fails (harmless, several per proposal)."""
    warnings.filterwarnings("ignore", module=r"botorch(\.|$)")
    warnings.filterwarnings("ignore", message=r".*Optimization failed.*")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)
    quiet_warnings()
    sizes = quick() if args.quick else full()
    if args.pool_stop_size:
        sizes = dataclasses.replace(sizes, pool_stop_size=args.pool_stop_size)
    groups = list(args.only) if args.only else list(GROUPS)
    groups = [g for g in GROUPS if g in groups]
    meta = run_meta(sizes, groups)
    print(f"mbrl-tune benchmarks -- {sizes.label}")
    print(f"torch {meta['versions']['torch']}, {meta['torch_threads']} intra-op thread(s); {meta['cpu']}, "
          f"{meta['cpus']} CPUs, load average at start {meta['load_average_at_start'][0]:.2f}", flush=True)
    work_dir = Path(tempfile.mkdtemp(prefix="bench-work-", dir=_work_parent(Path(args.data_dir))))
    start = time.perf_counter()
    try:
        rows = run_groups(sizes, groups, Path(args.data_dir), work_dir)
    finally:
        if not args.keep_work:
            shutil.rmtree(work_dir, ignore_errors=True)
    meta["total_seconds"] = time.perf_counter() - start
    meta["torch_threads_at_end"] = torch.get_num_threads()
    out = Path(args.out)
    write_json(out, meta, rows)
    print()
    print(format_table(rows))
    print()
    print(format_notes(rows))
    print(f"\n{meta['mode']} run of {len(rows)} rows in {meta['total_seconds']:.0f} s, "
          f"{meta['torch_threads']} torch thread(s); wrote {out}"
          + (f"; work folder kept at {work_dir}" if args.keep_work else ""))
    return 0


def _work_parent(data_dir: Path) -> Path:
    data_dir.mkdir(parents=True, exist_ok=True)
    return data_dir


if __name__ == "__main__":
    sys.exit(main())
