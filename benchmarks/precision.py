"""What ``rollout.precision=bfloat16`` changes, on a real pool and real dataset states: the ensemble's
predictions and every penalty in bfloat16 against float32, next to the model's own error, how far
autocast's bfloat16 and ``trials.models.precision.Bfloat16Rounding`` (bfloat16 numerics in float32 arithmetic, what
rollouts use on CPUs without bfloat16 units) differ, and the predict time of one rollout chunk in each
format (1 thread)::

    python -m benchmarks.precision --dataset data/hopper-medium-100k.hdf5 --pool-dir data/pools \
        --pool-max-epochs 40

The pool is loaded from ``--pool-dir`` (trained there first if missing, as a trial would).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import torch

from trials.config import DynamicsConfig
from trials.data.dataset import load_dataset
from trials.models.pool import load_or_train_pool, select_members
from trials.models.precision import Bfloat16Rounding, native_bfloat16, precision_context
from trials.rollouts.penalties import PENALTIES
from trials.rollouts.rollout import DEFAULT_CHUNK


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="data/hopper-medium-100k.hdf5")
    p.add_argument("--pool-dir", default="data/pools")
    p.add_argument("--pool-max-epochs", type=int, default=40, help="dynamics.max_epochs of the pool")
    p.add_argument("--states", type=int, default=4096, help="dataset transitions compared")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(1)
    ds = load_dataset(args.dataset)
    pool, _ = load_or_train_pool(ds, args.seed, DynamicsConfig(max_epochs=args.pool_max_epochs), Path(args.pool_dir))
    model, elites = select_members(pool, pool.members, min(5, pool.members))
    gen = torch.Generator().manual_seed(args.seed)
    idx = torch.randint(0, len(ds), (args.states,), generator=gen)
    obs, act = torch.as_tensor(ds.observations[idx]), torch.as_tensor(ds.actions[idx])
    truth = torch.cat([torch.as_tensor(ds.next_observations[idx]) - obs, torch.as_tensor(ds.rewards[idx])[:, None]], -1)
    cpu = torch.device("cpu")
    with torch.no_grad():
        mean32, std32 = model.predict(obs, act)
        with precision_context("bfloat16", cpu):
            mean16, std16 = model.predict(obs, act)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mean_auto, _ = model.predict(obs, act)
        with Bfloat16Rounding():
            mean_round, _ = model.predict(obs, act)
        model_rmse = float((mean32 - truth).pow(2).mean().sqrt())
        gap = float((mean16 - mean32).pow(2).mean().sqrt())
        print(f"{ds.meta.env}-{ds.meta.level}, {len(ds)} transitions, {model.members} members, {args.states} states")
        print(f"mean [delta_s, r]: model RMSE vs truth {model_rmse:.4f}; bfloat16 vs float32 RMSE {gap:.2e} "
              f"({gap / model_rmse:.2%} of the model's error)")
        print(f"std: median relative difference {float(((std16 - std32).abs() / std32).median()):.2%}")
        differ = float((mean_auto != mean_round).float().mean())
        print(f"bfloat16 autocast vs rounding in float32: {differ:.2%} of the means differ, max "
              f"{float((mean_auto - mean_round).abs().max()):.2e} (rollouts use "
              f"{'autocast' if native_bfloat16(cpu) else 'the rounding'} on this CPU)")
        rows = torch.arange(args.states)
        k = elites[torch.randint(0, elites.shape[0], (args.states,), generator=gen)]
        noise = torch.randn(mean32.shape[1:], generator=gen)
        print(f"{'penalty':18s} {'mean f32':>10s} {'mean bf16':>10s} {'median rel diff':>16s} {'corr':>8s}")
        for name, penalty in PENALTIES.items():
            if name == "none":
                continue
            u32 = penalty(mean32, std32, torch.addcmul(mean32[k, rows], std32[k, rows], noise), k)
            u16 = penalty(mean16, std16, torch.addcmul(mean16[k, rows], std16[k, rows], noise), k)
            rel = float(((u16 - u32).abs() / u32.abs().clamp_min(1e-8)).median())
            corr = float(torch.corrcoef(torch.stack([u32, u16]))[0, 1])
            print(f"{name:18s} {float(u32.mean()):10.4f} {float(u16.mean()):10.4f} {rel:16.2%} {corr:8.5f}")
        chunk_obs, chunk_act = obs[:DEFAULT_CHUNK], act[:DEFAULT_CHUNK]
        contexts: dict[str, Callable[[], AbstractContextManager[Any]]] = {
            "float32": nullcontext, "bfloat16 autocast": lambda: torch.autocast("cpu", dtype=torch.bfloat16),
            "bfloat16 rounding in float32": Bfloat16Rounding}
        for label, context in contexts.items():
            times = []
            for _ in range(21):
                start = time.perf_counter()
                with context():
                    model.predict(chunk_obs, chunk_act)
                times.append(time.perf_counter() - start)
            median_ms = sorted(times)[10] * 1e3
            print(f"predict of one {DEFAULT_CHUNK}-state chunk, {label}: {median_ms:.2f} ms (median of 21)")


if __name__ == "__main__":
    main()
