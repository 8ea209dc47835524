"""One trial in this process, without Ray: the run behind ``mbrl-tune train``."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from trials.config import TrialConfig, atomic_write_text
from trials.data.dataset import load_dataset
from trials.host import machine
from trials.run.build import build_trainer
from trials.run.lockstep import offline_scores


def run_standalone(cfg: TrialConfig, out_dir: Path, progress: bool = True) -> dict[str, Any]:
    """Run one trial in this process; write ``results.json`` and ``policy.pt`` into ``out_dir``."""
    start = time.perf_counter()
    dataset = load_dataset(cfg.dataset, cfg.env)
    trainer = build_trainer(cfg, dataset)
    bar = tqdm(total=cfg.epochs, desc="train", unit="epoch", disable=not progress)
    try:
        while not trainer.done:
            m = trainer.run_epoch()
            bar.set_postfix(score=f"{m['normalized_score']:.1f}", q=f"{m['q_mean']:.1f}",
                            pen=f"{m.get('penalty_mean', 0.0):.2f}")
            bar.update(1)
    finally:
        bar.close()
    final = trainer.history[-1]
    results = {
        "config": cfg.to_dict(),
        "status": trainer.status,
        "score": final["score"],
        "normalized_score": final["normalized_score"],
        "return_mean": final["return_mean"],
        "behaviour_normalized_score": dataset.meta.behaviour_normalized_score,
        "pool": {"key": trainer.pool_info.key, "trained_here": trainer.pool_info.trained_here,
                 "epochs": trainer.pool_info.epochs, "holdout_mse": trainer.pool_info.holdout_mse,
                 **trainer.pool_info.fit},
        "machine": machine(trainer.device),
        "phase_seconds": dict(trainer.phase_seconds),
        "wall_seconds": time.perf_counter() - start,
        "history": trainer.history,
    }
    results.update(offline_scores({cfg.seed: trainer}, dataset))  # score_fqe / score_model if asked for
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / ".policy.pt.tmp"
    torch.save({"actor": trainer.agent.actor.state_dict(), "config": cfg.to_dict()}, tmp)
    tmp.replace(out_dir / "policy.pt")
    atomic_write_text(out_dir / "results.json", json.dumps(results, indent=2))
    return results
