"""Our MOPO epoch against OfflineRL-Kit's own, measured side by side in one run.

    python -m benchmarks.peer --okit DIR [--dataset FILE] [--rounds 2] [--epochs 3] [--out runs/bench/peer.json]

DIR is a local checkout of yihaosun1124/OfflineRL-Kit that you provide (e.g. ``git clone``, or the
``fetch`` tool); its modules run unmodified from there (``benchmarks.okit_epoch``), nothing of it is in
this repository. It needs ``gym`` and ``tensorboard`` importable (``pip install -e '.[bench]'``).

Each measurement is a fresh worker process on one torch thread, and the workers are interleaved round
by round, so the ratios hold on a loaded machine: per round, ours (float32 rollouts), ours (bfloat16
rollouts), OfflineRL-Kit as shipped, and OfflineRL-Kit with glibc's allocator tuned through the
environment (``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=68719476736``, what ``trials.memory`` does for us
in-process). Same data, same sizes on both sides: SAC 256x2 with twin critics, 1,000 updates of batch 256
(real ratio 0.05), one rollout round of 50,000 states of horizon 5 per epoch, 7 members / 5 elites of
200x4, MOPO's max-aleatoric penalty, a fake buffer of 5 rounds, no evaluation. The default data is a
generated halfcheetah-random set: halfcheetah never terminates, so both rollouts store exactly 250,000
transitions per epoch whatever the models learned (both pools are trained 2 epochs only).

The first epoch of every worker is warm-up; a variant's figure is the median over its other epochs of
all rounds. Exit 2 with one line when DIR holds no ``offlinerlkit`` package.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.engine import REPO_ROOT, run_worker
from trials.config import TrialConfig, apply_overrides, atomic_write_text

GLIBC_TUNED = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "68719476736"}
VARIANTS = ("ours", "ours[bfloat16]", "okit", "okit[glibc]")
#: Our trial at OfflineRL-Kit's sizes for the epoch (its halfcheetah setting: horizon 5, coefficient 0.5).
OUR_SETTINGS: dict[str, Any] = {
    "penalty": "max_aleatoric", "lam": 0.5, "num_models": 7, "num_elites": 5, "real_ratio": 0.05,
    "rollout.horizon": 5, "rollout.batch_size": 50_000, "rollout.freq": 1000, "rollout.retain_epochs": 5,
    "dynamics.pool_size": 7, "dynamics.max_epochs": 2, "steps_per_epoch": 1000, "eval_every": 1_000_000,
    "sac.actor_lr": 1e-4, "sac.alpha_lr": 1e-4, "sac.actor_lr_schedule": "cosine",
}


class PeerError(Exception):
    """A bad argument (one line, exit 2)."""


def check_okit(path: Path) -> Path:
    if not (path / "offlinerlkit" / "policy_trainer" / "mb_policy_trainer.py").is_file():
        raise PeerError(f"--okit {path}: no OfflineRL-Kit checkout there (expected offlinerlkit/policy_trainer/"
                        f"mb_policy_trainer.py); clone yihaosun1124/OfflineRL-Kit and pass its folder")
    return path.resolve()


def our_epoch(dataset: Path, pool_dir: Path, epochs: int, work: Path, tag: str, precision: str) -> list[float]:
    data = apply_overrides({"dataset": str(dataset), "pool_dir": str(pool_dir), "epochs": epochs},
                           {**OUR_SETTINGS, "rollout.precision": precision})
    result = run_worker(TrialConfig.from_dict(data, "peer benchmark trial"), epochs, work, tag=tag)
    return [e["wall_s"] for e in result["epochs"]]


def okit_epoch(okit: Path, dataset: Path, epochs: int, work: Path, tag: str, glibc: bool) -> list[float]:
    out = work / f"{tag}-result.json"
    env = {**os.environ, **(GLIBC_TUNED if glibc else {})}
    with open(work / f"{tag}.log", "w") as log:
        subprocess.run([sys.executable, "-m", "benchmarks.okit_epoch", "--okit", str(okit), "--dataset",
                        str(dataset), "--epochs", str(epochs), "--out", str(out)], check=True, cwd=REPO_ROOT,
                       env=env, stdout=log, stderr=subprocess.STDOUT, timeout=3600)
    return [e["wall_s"] for e in json.loads(out.read_text())["epochs"]]


def default_dataset(work: Path) -> Path:
    from trials.data.dataset import save_hdf5  # noqa: PLC0415
    from trials.envs import get_env_spec  # noqa: PLC0415
    from trials.generation.generate import generate  # noqa: PLC0415
    from trials.generation.settings import GenerateConfig  # noqa: PLC0415

    path = work / "halfcheetah-random-100k.hdf5"
    if not path.is_file():
        save_hdf5(generate(get_env_spec("halfcheetah"), "random", 100_000, 0, GenerateConfig(), work / "behaviour",
                           progress=False), path)
    return path


def measure(okit: Path, dataset: Path, rounds: int, epochs: int, work: Path) -> dict[str, Any]:
    """Interleaved rounds of the four variants; per variant the per-epoch wall times of every worker."""
    pools = work / "pools"
    runs: dict[str, list[list[float]]] = {v: [] for v in VARIANTS}
    for r in range(rounds):
        for variant in VARIANTS:
            tag = f"{variant.replace('[', '-').rstrip(']')}-{r}"
            t0 = time.perf_counter()
            if variant.startswith("ours"):
                precision = "bfloat16" if "bfloat16" in variant else "float32"
                walls = our_epoch(dataset, pools, epochs, work, tag, precision)
            else:
                walls = okit_epoch(okit, dataset, epochs, work, tag, glibc="glibc" in variant)
            runs[variant].append(walls)
            print(f"  round {r + 1}/{rounds} {variant}: epochs {', '.join(f'{w:.1f}' for w in walls)} s "
                  f"({time.perf_counter() - t0:.0f} s with set-up)", flush=True)
    medians = {v: statistics.median(w for walls in runs[v] for w in walls[1:]) for v in VARIANTS}
    return {"runs": runs, "median_epoch_s": medians}


def format_ratios(medians: dict[str, float]) -> str:
    lines = [f"{'variant':<16}{'epoch (median)':>16}{'vs okit':>10}{'vs okit[glibc]':>16}"]
    for v in VARIANTS:
        lines.append(f"{v:<16}{medians[v]:>14.2f} s{medians['okit'] / medians[v]:>9.2f}x"
                     f"{medians['okit[glibc]'] / medians[v]:>15.2f}x")
    lines.append("(ratio = OfflineRL-Kit's epoch time / this variant's: >1 means this variant is faster)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.peer", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--okit", required=True, help="a local checkout of yihaosun1124/OfflineRL-Kit")
    p.add_argument("--dataset", help="HDF5 dataset (default: a generated halfcheetah-random, 100k transitions)")
    p.add_argument("--rounds", type=int, default=2, help="interleaved rounds of the four variants")
    p.add_argument("--epochs", type=int, default=3, help="epochs per worker; the first is warm-up")
    p.add_argument("--out", default="runs/bench/peer.json", help="result JSON (written atomically)")
    args = p.parse_args(argv)
    try:
        okit = check_okit(Path(args.okit))
        if args.rounds < 1 or args.epochs < 2:
            raise PeerError(f"--rounds {args.rounds} --epochs {args.epochs}: need rounds >= 1 and epochs >= 2 "
                            f"(the first epoch of each worker is warm-up)")
        if args.dataset and not Path(args.dataset).is_file():
            raise PeerError(f"--dataset {args.dataset}: file not found")
    except PeerError as exc:
        print(f"benchmarks.peer: error: {exc}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="peer-") as tmp:
        work = Path(tmp)
        dataset = Path(args.dataset).resolve() if args.dataset else default_dataset(work)
        print(f"peer benchmark on {dataset.name}: {args.rounds} round(s) x {len(VARIANTS)} variants x "
              f"{args.epochs} epochs, one thread each, interleaved", flush=True)
        result = measure(okit, dataset, args.rounds, args.epochs, work)
    result.update({"dataset": str(dataset), "okit": str(okit), "rounds": args.rounds, "epochs": args.epochs,
                   "date": time.strftime("%Y-%m-%d %H:%M"), "machine": os.uname().nodename,
                   "cpus": os.cpu_count(), "load_avg_at_end": os.getloadavg(), "our_settings": OUR_SETTINGS})
    print(format_ratios(result["median_epoch_s"]))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(result, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
