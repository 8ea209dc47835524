"""Learning check (a script, not a test): a published hand-tuned setting for a dataset (MOPO's by
default; ``--baseline mobile`` or ``ravl`` for the newer methods), trained by the trial engine within a
wall-clock budget on this machine; prints its normalised score against the behaviour policy's, the mean
Q-value per epoch (the edge-of-reach check: ``--set dynamics.kind=true``) and the wall-clock by phase.

    .venv/bin/python -m benchmarks.learning_check --dataset data/hopper-medium-100k.hdf5 --epochs 60 \
        [--set rollout.precision=bfloat16]
    .venv/bin/python -m benchmarks.learning_check --dataset data/halfcheetah-random-100k.hdf5 --baseline ravl \
        --set dynamics.kind=true
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from trials.config import TrialConfig, parse_overrides
from trials.data.baselines import baseline_sources, hand_tuned
from trials.data.dataset import load_dataset
from trials.run.standalone import run_standalone


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="data/hopper-medium-100k.hdf5")
    p.add_argument("--baseline", default="mopo_official", choices=baseline_sources(),
                   help="the source of the hand-tuned setting")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--steps-per-epoch", type=int, default=1000)
    p.add_argument("--eval-every", type=int, default=10)
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument("--pool-max-epochs", type=lambda v: None if v == "none" else int(v), default=40,
                   help="cap on dynamics training epochs ('none': to early stopping)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="runs/learning_check")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="further trial-config overrides, e.g. rollout.precision=bfloat16")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    meta = load_dataset(args.dataset).meta
    overrides = hand_tuned(args.baseline, f"{meta.env}-{meta.level}")
    cfg = TrialConfig(dataset=args.dataset, seed=args.seed, epochs=args.epochs,
                      steps_per_epoch=args.steps_per_epoch, eval_every=args.eval_every,
                      eval_episodes=args.eval_episodes,
                      dynamics={"max_epochs": args.pool_max_epochs}).with_overrides(overrides)
    cfg = cfg.with_overrides(parse_overrides(args.set))
    out = Path(args.out)
    results = run_standalone(cfg, out)
    phases = results["phase_seconds"]
    print(json.dumps({
        "dataset": args.dataset, "baseline": args.baseline, "overrides": overrides,
        "normalized_score": results["normalized_score"],
        "behaviour_normalized_score": results["behaviour_normalized_score"],
        "scores_by_epoch": [(h["epoch"], round(h["normalized_score"], 1)) for h in results["history"]
                            if h["evaluated"]],
        "q_mean_by_epoch": [round(h["q_mean"], 1) for h in results["history"]],
        "penalty_mean_by_epoch": [round(h.get("penalty_mean", 0.0), 3) for h in results["history"]],
        "status": results["status"],
        "wall_seconds": round(results["wall_seconds"], 1),
        "phase_seconds": {k: round(v, 1) for k, v in phases.items()},
        "pool_epochs": results["pool"]["epochs"],
    }, indent=2))


if __name__ == "__main__":
    main()
