"""Worker process of the epoch and memory rows: builds one trial (its pool already trained and stored),
runs a few epochs of ``MOPOTrainer.run_epoch`` and writes per-epoch wall time, the phase split, page
faults and the process's peak RSS (``ru_maxrss``) as JSON. Run in its own process so that the RSS is the
trial's alone::

    python -m benchmarks.trial_epoch --config trial.json --epochs 3 --out result.json
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path
from typing import Any

import torch

from trials.config import TrialConfig, atomic_write_text
from trials.data.dataset import load_dataset
from trials.run.build import build_trainer
from trials.run.mopo import MOPOTrainer


def _rss_mib() -> float:
    """Current resident set size."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 2**20


def _maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def run_epochs(trainer: MOPOTrainer, epochs: int) -> list[dict[str, Any]]:
    """Run ``epochs`` epochs; per epoch: wall seconds, rollout and SAC seconds, rollout size, faults."""
    out = []
    for _ in range(epochs):
        phases = dict(trainer.phase_seconds)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        start = time.perf_counter()
        metrics = trainer.run_epoch()
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_SELF)
        out.append({
            "wall_s": wall,
            "rollout_s": trainer.phase_seconds["rollout"] - phases.get("rollout", 0.0),
            "sac_s": trainer.phase_seconds["sac"] - phases.get("sac", 0.0),
            "eval_s": trainer.phase_seconds.get("eval", 0.0) - phases.get("eval", 0.0),
            "rollout_length": metrics.get("rollout_length"),
            "rollout_terminated_fraction": metrics.get("rollout_terminated_fraction"),
            "model_buffer_size": metrics["model_buffer_size"],
            "minor_faults": after.ru_minflt - usage.ru_minflt,
            "sys_s": after.ru_stime - usage.ru_stime,
            "status": metrics["status"],
        })
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="trial config (YAML/JSON) with dataset and pool_dir set")
    p.add_argument("--epochs", type=int, required=True)
    p.add_argument("--out", required=True, help="result JSON path (written atomically)")
    args = p.parse_args()
    torch.set_num_threads(1)
    cfg = TrialConfig.load(args.config)
    start = time.perf_counter()
    dataset = load_dataset(cfg.dataset, cfg.env)
    trainer = build_trainer(cfg, dataset)
    setup_s = time.perf_counter() - start
    setup_maxrss = _maxrss_mib()
    epochs = run_epochs(trainer, args.epochs)
    mb = trainer.model_buffer
    result = {
        "setup_s": setup_s,
        "pool_trained_here": trainer.pool_info.trained_here,
        "epochs": epochs,
        "setup_maxrss_mib": setup_maxrss,
        "maxrss_mib": _maxrss_mib(),
        "rss_end_mib": _rss_mib(),
        "model_buffer_capacity": mb.capacity,
        "model_buffer_mib": sum(t.numel() * t.element_size() for t in (mb.obs, mb.act, mb.rew, mb.next_obs, mb.done))
        / 2**20,
        "real_buffer_mib": sum(t.numel() * t.element_size() for t in (trainer.real.obs, trainer.real.act,
                                                                       trainer.real.rew, trainer.real.next_obs,
                                                                       trainer.real.done)) / 2**20,
        "threads": torch.get_num_threads(),
    }
    atomic_write_text(Path(args.out), json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
