"""The GPU check (issue 25): what a CUDA device does with the trial engine, in one run of a few minutes.

    python -m benchmarks.gpu_check [--device cuda] [--quick] [--out DIR]

Sections, each printed as it ends (a failing section prints its error and the run goes on):

1. the device: torch, CUDA, the card, bfloat16;
2. the CUDA tests (``tests/trials/test_cuda.py``);
3. a checkpoint round trip: one epoch, the state saved, read onto the CPU as the Tune trainable reads it,
   restored onto the device, run on; against the same trial run straight through;
4. host syncs: ``torch.cuda.set_sync_debug_mode("error")`` around SAC updates (one seed, and four seeds
   batched) and a dynamics-training step: a hidden ``.item()`` or a host copy fails there;
5. one epoch of each method: every MOPO penalty, MOBILE, EDAC (10 critics, eta 1), bfloat16 rollouts, a
   bfloat16 pool and the true simulator;
6. Ray tasks reserving 0.5 and 0 GPUs, each printing the devices it sees (skipped without Ray);
7. timings, synchronised: an epoch at S = 1 and S = 8 seeds (MOPO's sizes, 1,000 updates), a
   pool-training epoch, and the projected wall-clock of a trial at MOPO's published 1M updates.

``--device cpu --quick`` runs the same code on the CPU at toy sizes (a test keeps the script working; the
numbers then say nothing about a GPU). ``benchmarks/gpu_check.sh`` sets up a device machine and runs it.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from benchmarks.compute import nll_step
from trials.config import TrialConfig, torch_device
from trials.data.dataset import Dataset, load_hdf5, save_hdf5
from trials.envs import ENVS
from trials.generation.generate import generate
from trials.generation.settings import GenerateConfig
from trials.run.build import build_trainer
from trials.run.mopo import device_clock
from trials.run.seed_group import SeedGroup

PENALTIES = ("max_aleatoric", "max_pairwise_diff", "ensemble_std", "ensemble_var", "ll_var", "loo_kl")


def _say(section: str, text: str) -> None:
    print(f"[{section}] {text}", flush=True)


def _section(name: str, fn: Callable[[], Any], report: dict[str, Any]) -> None:
    start = time.perf_counter()
    try:
        report[name] = {"ok": True, "result": fn()}
    except Exception as exc:  # a check that fails is a finding: print it and go on
        report[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        _say(name, "FAILED: " + "".join(traceback.format_exception_only(exc)).strip())
        traceback.print_exc()
    report[name]["seconds"] = round(time.perf_counter() - start, 1)
    _say(name, f"{'ok' if report[name]['ok'] else 'failed'} in {report[name]['seconds']} s")


def small_config(data: Path, pools: Path, device: str, **overrides: Any) -> TrialConfig:
    base = TrialConfig(dataset=str(data), pool_dir=str(pools), device=device, penalty="max_aleatoric", lam=1.0,
                       num_models=3, num_elites=2, epochs=2, steps_per_epoch=40, eval_episodes=1,
                       rollout={"batch_size": 500, "horizon": 3, "freq": 20},
                       dynamics={"pool_size": 4, "hidden": 32, "layers": 2, "max_epochs": 3},
                       sac={"hidden": 32, "batch_size": 64})
    return base.with_overrides(overrides)


def device_info(device: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {"torch": torch.__version__, "cuda": torch.version.cuda, "device": str(device)}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(name=props.name, capability=f"{props.major}.{props.minor}", memory_gib=round(
            props.total_memory / 2**30, 1), multiprocessors=props.multi_processor_count,
            bf16=torch.cuda.is_bf16_supported())
    _say("device", json.dumps(info))
    return info


def cuda_tests(device: torch.device) -> str:
    if device.type != "cuda":
        return "skipped: not a CUDA device"
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/trials/test_cuda.py"],
                          capture_output=True, text=True, timeout=300)
    tail = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-500:]
    _say("cuda tests", tail)
    if done.returncode != 0:
        raise RuntimeError(done.stdout[-3000:] + done.stderr[-2000:])
    return tail


def checkpoint_round_trip(data: Path, work: Path, ds: Dataset, device: str) -> dict[str, Any]:
    cfg = small_config(data, work / "pools", device, epochs=3)
    straight = build_trainer(cfg, ds)
    while not straight.done:
        straight.run_epoch()
    first = build_trainer(cfg, ds)
    first.run_epoch()
    path = work / "trial_state.pt"
    torch.save({cfg.seed: first.state_dict()}, path)
    states = torch.load(path, map_location="cpu", weights_only=False)  # as trials.run.trainable.read_checkpoint
    resumed = build_trainer(cfg, ds)
    resumed.load_state_dict(states[cfg.seed])
    while not resumed.done:
        resumed.run_epoch()
    scores = [h["score"] for h in straight.history], [h["score"] for h in resumed.history]
    same = scores[0] == scores[1]
    _say("checkpoint", f"resumed on {device}; scores straight {scores[0]} resumed {scores[1]} "
                       f"({'identical' if same else 'different: CUDA kernels need not be bitwise deterministic'})")
    return {"straight": scores[0], "resumed": scores[1], "identical": same}


def host_syncs(data: Path, work: Path, ds: Dataset, device: torch.device) -> dict[str, str]:
    if device.type != "cuda":
        return {"all": "skipped: not a CUDA device"}
    from trials.agent.seed_batch import SeedBatchedSAC  # noqa: PLC0415
    from trials.models.dynamics import _decay_loss  # noqa: PLC0415  (the loss fit adds)

    cfg = small_config(data, work / "pools", str(device))
    out = {}
    one = build_trainer(cfg, ds)
    group = SeedGroup({s: build_trainer(cfg.with_overrides({"seed": s}), ds) for s in range(4)})
    batched: SeedBatchedSAC = group.learner
    model = one.model
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    x = torch.randn(model.members, cfg.dynamics.batch_size, model.obs_dim + model.act_dim, device=device)
    y = torch.randn(model.members, cfg.dynamics.batch_size, model.out_dim, device=device)

    def dynamics_step() -> None:  # one batch of trials.models.dynamics.fit
        nll_step(model, opt, x, y, _decay_loss(model, cfg.dynamics.weight_decay))

    for name, step in {
        "sac_update[S=1]": lambda: one.agent.update(*one.next_batch()),
        "sac_update[S=4]": lambda: batched.update(*(torch.stack(p) for p in zip(
            *[t.next_batch() for t in group.trainers.values()], strict=True))),
        "dynamics_step": dynamics_step,
    }.items():
        step()  # warm-up outside the check (first calls allocate and may sync)
        torch.cuda.synchronize()
        try:
            torch.cuda.set_sync_debug_mode("error")
            step()
            out[name] = "no host sync"
        except RuntimeError as exc:
            out[name] = f"host sync: {str(exc).splitlines()[0]}"
        finally:
            torch.cuda.set_sync_debug_mode("default")
        _say("syncs", f"{name}: {out[name]}")
    return out


def method_smoke(data: Path, work: Path, ds: Dataset, device: str) -> dict[str, Any]:
    variants: dict[str, dict[str, Any]] = {p: {"penalty": p} for p in PENALTIES}
    variants |= {
        "mobile": {"penalty": "mobile", "lam": 0.5},
        "edac": {"penalty": "none", "sac.num_critics": 10, "sac.eta": 1.0},
        "rollout_bfloat16": {"rollout.precision": "bfloat16"},
        "pool_bfloat16": {"dynamics.precision": "bfloat16"},
        "true_dynamics": {"dynamics.kind": "true", "penalty": "none"},
    }
    out = {}
    for name, overrides in variants.items():
        cfg = small_config(data, work / "pools", device, epochs=1, **overrides)
        trainer = build_trainer(cfg, ds)
        metrics = trainer.run_epoch()
        out[name] = {"score": metrics["score"], "finite": math.isfinite(metrics["score"]),
                     "updates_per_sec": round(metrics["updates_per_sec"], 1)}
        _say("methods", f"{name}: {out[name]}")
        if not out[name]["finite"]:
            raise RuntimeError(f"{name}: score {metrics['score']}")
    return out


def ray_tasks() -> dict[str, Any]:
    try:
        import ray  # noqa: PLC0415
    except ImportError:
        _say("ray", "skipped: Ray is not installed on this machine (its wheel is larger than a device call carries)")
        return {"skipped": "no ray"}

    @ray.remote
    def sees() -> dict[str, Any]:
        import os  # noqa: PLC0415

        import torch as t  # noqa: PLC0415

        return {"CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES"), "devices": t.cuda.device_count(),
                "gpu_ids": ray.get_gpu_ids()}

    gpus = torch.cuda.device_count()
    ray.init(num_cpus=2, num_gpus=gpus, include_dashboard=False, log_to_driver=False)
    try:  # a task reserving a GPU on a cluster without one would wait for ever
        out = {f"num_gpus={g}": ray.get(sees.options(num_gpus=g).remote(), timeout=120) if g <= gpus
               else "not schedulable: no GPU in this Ray cluster" for g in (0.5, 0)}
    finally:
        ray.shutdown()
    for k, v in out.items():
        _say("ray", f"{k}: {v}")
    return out


def timings(data: Path, work: Path, ds: Dataset, device: str, quick: bool) -> dict[str, Any]:
    mopo = dict(num_models=7, num_elites=5, steps_per_epoch=1000, epochs=1, eval_every=1000,
                rollout={"batch_size": 50_000, "horizon": 5, "freq": 1000},
                dynamics={"pool_size": 7, "hidden": 200, "layers": 4, "max_epochs": 1},
                sac={"hidden": 256, "batch_size": 256})
    if quick:
        mopo = dict(num_models=3, num_elites=2, steps_per_epoch=40, epochs=1, eval_every=1000,
                    rollout={"batch_size": 500, "horizon": 3, "freq": 20},
                    dynamics={"pool_size": 4, "hidden": 32, "layers": 2, "max_epochs": 1},
                    sac={"hidden": 32, "batch_size": 64})
    out: dict[str, Any] = {}
    base = TrialConfig(dataset=str(data), pool_dir=str(work / "mopo-pools"), device=device, penalty="max_aleatoric",
                       lam=1.0, eval_episodes=1, **mopo)
    dev = torch.device(device)
    cfg = base.with_overrides({"epochs": 3})
    seeds_max = 8 if not quick else 2
    start = device_clock(dev)
    for s in range(seeds_max):  # each seed's pool: one training epoch (capped), stored for the trials below
        build_trainer(cfg.with_overrides({"seed": s}), ds)
    out["pool_epoch_s"] = round((device_clock(dev) - start) / seeds_max, 2)
    for seeds in (1, seeds_max):
        trainers = {s: build_trainer(cfg.with_overrides({"seed": s}), ds) for s in range(seeds)}
        group = SeedGroup(trainers) if seeds > 1 else None
        epoch = group.run_epoch if group is not None else trainers[0].run_epoch
        epoch()  # the first epoch allocates; the second is measured
        start = device_clock(dev)
        epoch()
        out[f"epoch_s[S={seeds}]"] = round(device_clock(dev) - start, 3)
    per_epoch = out["epoch_s[S=1]"]
    updates = base.steps_per_epoch
    out["projected_1M_updates_h"] = round(per_epoch * 1_000_000 / updates / 3600, 2)
    _say("timings", json.dumps(out) + " (a pool to early stopping adds 200-360 of its epochs on 100k "
                                      "random data; evaluation excluded)")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu (a check of the script itself)")
    p.add_argument("--quick", action="store_true", help="toy sizes everywhere")
    p.add_argument("--out", help="folder for gpu_check.json")
    args = p.parse_args(argv)
    device = torch_device(args.device)
    torch.set_num_threads(1)
    report: dict[str, Any] = {"started": time.strftime("%Y-%m-%d %H:%M:%S")}
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        work = Path(tmp)
        data = work / "hopper-random.hdf5"
        size = 3000 if args.quick else 20_000
        save_hdf5(generate(ENVS["hopper"], "random", size, 0, GenerateConfig(), work, progress=False), data)
        ds = load_hdf5(data)
        _section("device", lambda: device_info(device), report)
        _section("cuda tests", lambda: cuda_tests(device), report)
        _section("checkpoint", lambda: checkpoint_round_trip(data, work, ds, str(device)), report)
        _section("syncs", lambda: host_syncs(data, work, ds, device), report)
        _section("methods", lambda: method_smoke(data, work, ds, str(device)), report)
        _section("ray", ray_tasks, report)
        _section("timings", lambda: timings(data, work, ds, str(device), args.quick), report)
    failed = [k for k, v in report.items() if isinstance(v, dict) and not v.get("ok", True)]
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "gpu_check.json").write_text(json.dumps(report, indent=2, default=str))
    print(f"gpu check on {device}: {len(failed)} section(s) failed{': ' + ', '.join(failed) if failed else ''}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
