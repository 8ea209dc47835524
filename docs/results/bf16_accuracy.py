"""Issue 25, item 2: is a bfloat16-trained dynamics pool as accurate as the float32 one, on the evidence data?

For each evidence dataset, on the sweep's seed 0 and its architecture, beside the study's float32 pool:
the same pool trained with ``dynamics.precision: bfloat16`` (into ``runs/bf16/<dataset>/pools``, the
float32 pool copied beside it so both are read the same way), then

- the pool's record (epochs to early stopping, holdout MSE per member in the data's units and in target-std
  units, held-out member disagreement; what ``trials.models.pool`` stores with every pool),
- the calibration Spearman per heuristic at horizons 1/5/10 on 2,000 data states (as the study ran it),
- one trial's simulator score: the sweep's first trial (the hand-tuned setting, seed 0, 20,000 updates)
  against the same trial run on the bfloat16 pool,

and prints one table per dataset, float32 against bfloat16 (also written to ``<out>/bf16-accuracy.md``, the
numbers to ``<out>/bf16-accuracy.json``). Run from a clone that holds the evidence study in
``runs/studies/evidence`` (docs/results.md says how); every step is skipped when its output exists, so the
same command continues after a session's end (a pool training resumes from its progress file):

    python docs/results/bf16_accuracy.py [--datasets walker2d-random-100k ...] [--out runs/bf16]

Cost on the 2-core AMD EPYC: a pool to early stopping ~1-1.5 h in bfloat16 per dataset, calibration a minute,
a 20,000-update trial 7-60 min.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

from analysis.front import pool_record
from search_spaces.parse import load_space
from trials.models.pool import pool_key
from tuner.store.records import read_trials
from tuner.store.spec import SweepSpec, trial_base

STUDY = Path("runs/studies/evidence/sweeps")
DATASETS = ("walker2d-random-100k", "halfcheetah-random-100k", "hopper-medium-100k")
CLI = [str(Path(sys.executable).parent / "mbrl-tune")]


def run(args: list[str]) -> None:
    print("$", " ".join(args), flush=True)
    subprocess.run(args, check=True)


def one(name: str, out: Path) -> dict[str, dict]:
    sweep = SweepSpec.load(STUDY / name)
    dataset = sweep.datasets[0]
    folder = out / name
    pools = folder / "pools"
    pools.mkdir(parents=True, exist_ok=True)
    for pool in sweep.pool_dir.glob("pool-*-s0-*.pt"):  # the study's float32 pool, read the same way
        if not (pools / pool.name).exists():
            shutil.copy2(pool, pools / pool.name)
    base = trial_base(sweep, dataset, load_space(sweep.root / "space.yaml"), estimates=False)
    base = base.with_overrides({"seed": sweep.seeds[0], "pool_dir": str(pools.resolve())})
    first = next(r for r in read_trials(sweep.experiment_dir(dataset)) if r.order == 1)
    rows: dict[str, dict] = {}
    for precision in ("float32", "bfloat16"):
        cfg = base.with_overrides({"dynamics.precision": precision})
        config = folder / f"base-{precision}.yaml"
        cfg.save(config)
        calibration = folder / f"calibration-{precision}"
        if not (calibration / "calibration.json").is_file():  # trains the bfloat16 pool if missing
            run([*CLI, "calibrate", "--dataset", dataset, "--config", str(config), "--horizons", "1", "5", "10",
                 "--states", "2000", "--out", str(calibration)])
        trial = folder / f"trial-{precision}"
        if precision == "bfloat16" and not (trial / "results.json").is_file():
            trial_cfg = cfg.with_overrides(first.overrides)
            trial_config = folder / "trial-bfloat16.yaml"
            trial_cfg.save(trial_config)
            run([*CLI, "train", "--config", str(trial_config), "--out", str(trial), "--quiet"])
        pool = pools / f"{pool_key(sweep.dataset_hashes[dataset], sweep.seeds[0], cfg.dynamics)}.pt"
        score = (float(first.last["score"]) if precision == "float32"
                 else json.loads((trial / "results.json").read_text())["score"])
        rows[precision] = {"pool": pool_record(pool), "calibration": json.loads(
            (calibration / "calibration.json").read_text()), "trial_score": score}
    return rows


def _spearmans(calibration: dict, heuristic: str) -> str:
    by_h = {r["horizon"]: r["spearman"] for r in calibration["table"] if r["heuristic"] == heuristic}
    return " / ".join(f"{by_h[h]:.3f}" for h in sorted(by_h))


def table(name: str, rows: dict[str, dict]) -> str:
    """One dataset's float32-against-bfloat16 table, in markdown."""
    f32, b16 = rows["float32"], rows["bfloat16"]
    if f32["pool"] is None or b16["pool"] is None:
        return f"**{name}**: a pool file is damaged; run the script again (it trains the pool again)\n"
    seed = f32["calibration"]["meta"]["seed"]
    horizons = " / ".join(str(h) for h in f32["calibration"]["meta"]["horizons"])
    lines = [f"**{name}** (seed {seed}, the sweep's architecture)", "", "| | float32 | bfloat16 |",
             "|---|---|---|"]

    def add(label: str, f: str, b: str) -> None:
        lines.append(f"| {label} | {f} | {b} |")

    add("epochs to early stopping", str(f32["pool"]["epochs"]), str(b16["pool"]["epochs"]))
    add("training seconds (as stored; loaded host)", f"{f32['pool']['train_seconds']:.0f}",
        f"{b16['pool']['train_seconds']:.0f}")
    add("holdout MSE, data units (mean over members)", f"{f32['pool']['holdout_mse_raw']:.4f}",
        f"{b16['pool']['holdout_mse_raw']:.4f}")
    add("holdout MSE per member, data units",
        *(" ".join(f"{v:.4f}" for v in r["pool"]["holdout_mse_raw_members"]) for r in (f32, b16)))
    add("holdout MSE, target-std units", f"{f32['pool']['holdout_mse_std']:.4f}",
        f"{b16['pool']['holdout_mse_std']:.4f}")
    add("held-out member disagreement", f"{f32['pool']['disagreement']:.4f}", f"{b16['pool']['disagreement']:.4f}")
    heuristics = sorted({r["heuristic"] for r in f32["calibration"]["table"]})
    for heuristic in heuristics:
        add(f"Spearman {heuristic}, horizon {horizons}", _spearmans(f32["calibration"], heuristic),
            _spearmans(b16["calibration"], heuristic))
    add(f"trial score (the sweep's first trial, seed {seed})", f"{f32['trial_score']:.2f}",
        f"{b16['trial_score']:.2f}")
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", nargs="+", default=list(DATASETS))
    p.add_argument("--out", type=Path, default=Path("runs/bf16"))
    args = p.parse_args()
    results = {name: one(name, args.out) for name in args.datasets}
    (args.out / "bf16-accuracy.json").write_text(json.dumps(results, indent=2, default=str))
    text = "\n".join(table(name, rows) for name, rows in results.items())
    (args.out / "bf16-accuracy.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
