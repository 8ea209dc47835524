"""Whole-trial costs: training the shared dynamics pool, one epoch of ``MOPOTrainer.run_epoch`` at MOPO's
default sizes (split into rollout and SAC time) and the trial's peak memory. The epochs run in a worker
process (``benchmarks.trial_epoch``) so that its ``ru_maxrss`` is the trial's alone."""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks import flops
from benchmarks.report import Row, time_speedup
from benchmarks.sizes import HOPPER_ACT, HOPPER_OBS, Sizes
from trials.config import TrialConfig, apply_overrides
from trials.data.dataset import Dataset, load_dataset
from trials.models.pool import PoolInfo, load_or_train_pool

REPO_ROOT = Path(__file__).resolve().parents[1]


def trial_config(dataset: Path, pool_dir: Path, sizes: Sizes) -> TrialConfig:
    """TrialConfig defaults (MOPO's) plus the run's overrides; evaluation pushed past the measured epochs."""
    data = {"dataset": str(dataset), "pool_dir": str(pool_dir), "eval_every": 1_000_000}
    return TrialConfig.from_dict(apply_overrides(data, sizes.epoch_overrides), "benchmark trial config")


def train_pool(cfg: TrialConfig, dataset: Dataset) -> tuple[Row, PoolInfo]:
    """Pool-training row: seconds per epoch of ``fit`` for the trial's pool (trained here, into an empty
    folder, with the run's small ``max_epochs``)."""
    _, info = load_or_train_pool(dataset, cfg.seed, cfg.dynamics, cfg.resolved_pool_dir)
    if not info.trained_here:
        raise RuntimeError(f"{info.path}: pool already existed; the benchmark needs an empty pool folder")
    dyn = cfg.dynamics
    n = len(dataset)
    n_hold = min(int(n * dyn.holdout_ratio), dyn.max_holdout)
    per_epoch = info.train_seconds / info.epochs
    row = Row(
        "pool_train", "epoch", per_epoch, "s/epoch", info.epochs,
        f"trials.models.pool.load_or_train_pool (fit) of {dyn.pool_size} members {dyn.layers}x{dyn.hidden} on "
        f"{n} transitions ({n - n_hold} train, {n_hold} holdout), batch {dyn.batch_size}: mean over "
        f"{info.epochs} epochs of one training (fit has no per-epoch timer; includes normaliser set-up, "
        f"holdout evaluation and best-weight bookkeeping)",
        flops=float(flops.pool_epoch(dyn.pool_size, n - n_hold, n_hold, HOPPER_OBS, HOPPER_ACT, dyn.hidden,
                                     dyn.layers)),
        flop_formula="members * (n_train * (3 F_member - 2 d0 d1) + n_holdout * F_member)",
        details={"train_seconds": info.train_seconds, "epochs": info.epochs,
                 "steps_per_epoch": math.ceil((n - n_hold) / dyn.batch_size)},
    )
    return row, info


def run_worker(cfg: TrialConfig, epochs: int, work_dir: Path, tag: str = "epoch") -> dict[str, Any]:
    """Run ``benchmarks.trial_epoch`` in a fresh process and return its JSON result (config and result
    kept in ``work_dir`` as ``<tag>-trial.json`` and ``<tag>-result.json``)."""
    cfg_path = work_dir / f"{tag}-trial.json"
    out_path = work_dir / f"{tag}-result.json"
    cfg.save(cfg_path)
    subprocess.run([sys.executable, "-m", "benchmarks.trial_epoch", "--config", str(cfg_path), "--epochs",
                    str(epochs), "--out", str(out_path)], check=True, cwd=REPO_ROOT, timeout=1800)
    return json.loads(out_path.read_text())


def _median(epochs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(e[key] for e in epochs)


def epoch_rows(cfg: TrialConfig, result: dict[str, Any], sizes: Sizes, measured: dict[str, Row]) -> list[Row]:
    """Rows 5 and 9 from the worker's result: the epoch, its rollout and SAC phases, the peak RSS.

    The epoch's baseline is a composite of this run's baselines (full runs only, where sizes match):
    ``steps * t_baseline_update + transitions * t_loop_rollout / loop_transitions``."""
    timed = result["epochs"][sizes.epochs_skipped:]
    reps = len(timed)
    transitions = statistics.median(e["rollout_length"] * cfg.rollout.batch_size for e in timed)
    rounds = math.ceil(cfg.steps_per_epoch / cfg.rollout.freq)
    sac_flops = cfg.steps_per_epoch * cfg.sac.batch_size * flops.sac_update(HOPPER_OBS, HOPPER_ACT, cfg.sac.hidden,
                                                                           cfg.sac.layers)
    rollout_flops = transitions * flops.rollout_transition(cfg.num_models, HOPPER_OBS, HOPPER_ACT, cfg.dynamics.hidden,
                                                           cfg.dynamics.layers, cfg.sac.hidden, cfg.sac.layers)
    epoch_s, rollout_s, sac_s = (_median(timed, k) for k in ("wall_s", "rollout_s", "sac_s"))
    sizes_text = (f"{cfg.steps_per_epoch} SAC updates (batch {cfg.sac.batch_size}, real_ratio {cfg.real_ratio}), "
                  f"{rounds} rollout round(s) of {cfg.rollout.batch_size} states, h={cfg.rollout.horizon}, "
                  f"{cfg.num_models} models/{cfg.num_elites} elites, penalty {cfg.penalty}")
    sac_base, roll_base = _composite_baselines(measured, sizes, cfg, transitions)
    epoch = Row(
        "epoch", "epoch", epoch_s, "s/epoch", reps,
        f"MOPOTrainer.run_epoch in a worker process, no evaluation: {sizes_text}; median of epochs "
        f"{sizes.epochs_skipped + 1}-{sizes.epochs} (epoch 1 is warm-up)",
        flops=float(sac_flops + rollout_flops),
        flop_formula="SAC FLOPs + rollout FLOPs (rows epoch.sac, epoch.rollout)",
        details={"rollout_fraction": rollout_s / epoch_s, "sac_fraction": sac_s / epoch_s,
                 "other_s": epoch_s - rollout_s - sac_s, "setup_s": result["setup_s"],
                 "sys_time_fraction": _median(timed, "sys_s") / epoch_s,
                 "minor_faults_per_epoch": _median(timed, "minor_faults"),
                 "per_epoch_wall_s": [round(e["wall_s"], 2) for e in result["epochs"]]},
    )
    if sac_base is not None and roll_base is not None:
        epoch.baseline = "composite of baselines"
        epoch.baseline_what = ("steps x the baseline's update time (row sac_update) + transitions x the loop "
                               "rollout's time per transition (row rollout[max_aleatoric]) + this epoch's other time")
        epoch.baseline_value = sac_base + roll_base + epoch.details["other_s"]
        epoch.speedup = time_speedup(epoch_s, epoch.baseline_value)
    rollout = Row(
        "epoch.rollout", "epoch", rollout_s, "s/epoch", reps,
        f"rollout phase of the epoch (trainer.phase_seconds['rollout']): {rounds} round(s), pool trained "
        f"{cfg.dynamics.max_epochs} epochs so states do terminate",
        flops=float(rollout_flops),
        flop_formula="stored transitions * (members F_member + F_actor), as rollout[*] (useful work only: rows "
                     "computed after their rollout ended are not counted)",
        details={"transitions": transitions, "avg_batch_per_step": transitions / (rounds * cfg.rollout.horizon),
                 "mean_rollout_length": transitions / (rounds * cfg.rollout.batch_size),
                 "terminated_fraction": _median(timed, "rollout_terminated_fraction")},
    )
    if roll_base is not None:
        rollout.baseline, rollout.baseline_value = "loop rollout (scaled)", roll_base
        rollout.baseline_what = "transitions x the loop rollout's time per transition (row rollout[max_aleatoric])"
        rollout.speedup = time_speedup(rollout_s, roll_base)
    sac = Row(
        "epoch.sac", "epoch", sac_s, "s/epoch", reps,
        f"SAC phase of the epoch (trainer.phase_seconds['sac']): {cfg.steps_per_epoch} updates incl. mixing real "
        f"and model batches",
        flops=float(sac_flops), flop_formula="steps * batch * SAC FLOPs per sample (row sac_update)",
        details={"per_update_s": sac_s / cfg.steps_per_epoch},
    )
    if sac_base is not None:
        sac.baseline, sac.baseline_value = "steps x baseline update", sac_base
        sac.baseline_what = "steps x the baseline's update time in row sac_update"
        sac.speedup = time_speedup(sac_s, sac_base)
    memory = Row(
        "memory", "epoch", result["maxrss_mib"], "MiB", 1,
        "peak RSS (ru_maxrss) of the worker process running the trial: dataset, pool, buffers, SAC, "
        f"{sizes.epochs} epochs",
        details={"after_setup_maxrss_mib": result["setup_maxrss_mib"], "rss_at_end_mib": result["rss_end_mib"],
                 "model_buffer_mib": result["model_buffer_mib"], "model_buffer_rows": result["model_buffer_capacity"],
                 "real_buffer_mib": result["real_buffer_mib"]},
    )
    return [epoch, rollout, sac, memory]


def _composite_baselines(measured: dict[str, Row], sizes: Sizes, cfg: TrialConfig,
                         transitions: float) -> tuple[float | None, float | None]:
    """Baseline SAC seconds and loop-rollout seconds for this epoch, from rows measured in this run at the
    same sizes (None in quick runs, where the kernel rows use other sizes than the trial)."""
    if sizes.quick:
        return None, None
    sac_row, roll_row = measured.get("sac_update"), measured.get("rollout[max_aleatoric]")
    sac_base = roll_base = None
    if sac_row is not None and sac_row.baseline_value is not None:
        sac_base = cfg.steps_per_epoch * sac_row.baseline_value
    if roll_row is not None and roll_row.baseline_value is not None:
        roll_base = transitions * roll_row.baseline_value / roll_row.details["transitions"]
    return sac_base, roll_base


def epoch_group(sizes: Sizes, dataset_path: Path, work_dir: Path, measured: dict[str, Row]) -> list[Row]:
    """Rows pool_train, epoch, epoch.rollout, epoch.sac, memory and epoch[bfloat16]."""
    cfg = trial_config(dataset_path, work_dir / "pools", sizes)
    pool_row, _ = train_pool(cfg, load_dataset(dataset_path))
    ens = measured.get("ensemble_step")
    if ens is not None and not sizes.quick:
        pool_row.details["steps_x_ensemble_step_s"] = pool_row.details["steps_per_epoch"] * ens.value
    result = run_worker(cfg, sizes.epochs, work_dir)
    if result["pool_trained_here"]:
        raise RuntimeError("the epoch worker trained its own pool; expected the one trained for row pool_train")
    rows = epoch_rows(cfg, result, sizes, measured)
    bf16_cfg = cfg.with_overrides({"rollout.precision": "bfloat16"})
    bf16 = run_worker(bf16_cfg, sizes.epochs, work_dir, tag="epoch-bfloat16")
    return [pool_row, *rows, bfloat16_epoch_row(bf16_cfg, bf16, sizes, rows[0])]


def bfloat16_epoch_row(cfg: TrialConfig, result: dict[str, Any], sizes: Sizes, fp32_epoch: Row) -> Row:
    """Row 5b: the same epoch with ``rollout.precision=bfloat16``, against the float32 epoch (row epoch)."""
    timed = result["epochs"][sizes.epochs_skipped:]
    epoch_s, rollout_s, sac_s = (_median(timed, k) for k in ("wall_s", "rollout_s", "sac_s"))
    return Row(
        "epoch[bfloat16]", "epoch", epoch_s, "s/epoch", len(timed),
        "as row epoch (a second worker process) with rollout.precision=bfloat16: the rollout's ensemble matmuls "
        "in bfloat16; % of peak against the float32 peak",
        flops=fp32_epoch.flops, flop_formula="as row epoch",
        baseline="float32 epoch (ours)", baseline_what="row epoch, same sizes, measured just before",
        baseline_value=fp32_epoch.value,
        details={"rollout_s": rollout_s, "sac_s": sac_s, "maxrss_mib": result["maxrss_mib"],
                 "per_epoch_wall_s": [round(e["wall_s"], 2) for e in result["epochs"]]},
    )
