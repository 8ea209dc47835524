"""Seeds as one learner (group ``seeds``): one epoch's SAC updates (MOPO's sizes: 1,000 updates of batch
256, 2x256 networks, twin critics) for S = 1, 2, 4 seeds, the seed-batched learner
(:class:`trials.agent.seed_batch.SeedBatchedSAC`) against S separate learners run one after another, and the
peak resident memory of each in a fresh process. The rollouts and evaluations of an epoch are per seed
either way and are not in these rows; the ``seeds_rollout`` rows measure what batching the rollouts
would buy: one step of a rollout chunk (1,024 rows through the elites of 200x4 members) for S seeds'
pools stacked into one ensemble call, against S calls of one pool each (docs/design.md, decision 8).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import torch

from benchmarks.report import Row
from benchmarks.sizes import HOPPER_ACT, HOPPER_OBS, Sizes
from benchmarks.timing import measure_interleaved
from trials.agent.sac import SAC, SACConfig
from trials.agent.seed_batch import SeedBatchedSAC
from trials.models.dynamics import EnsembleDynamics
from trials.rollouts.replay import ReplayBuffer

SEED_COUNTS = (1, 2, 4)

_RSS_SCRIPT = """
import json, resource, sys, torch
from benchmarks.seeds import _setup
torch.set_num_threads(1)
seeds, batched, updates = int(sys.argv[1]), sys.argv[2] == "batched", int(sys.argv[3])
step = _setup(seeds, batched)
for _ in range(updates):
    step()
print(json.dumps({"max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _setup(seeds: int, batched: bool, batch: int = 256, hidden: int = 256, layers: int = 2,
           buffer_rows: int = 100_000):
    """One update of all ``seeds``: batched, or each separate learner in turn; each seed its own batch."""
    gen = torch.Generator().manual_seed(0)
    buf = ReplayBuffer(buffer_rows, HOPPER_OBS, HOPPER_ACT)
    buf.add_batch(torch.randn(buffer_rows, HOPPER_OBS, generator=gen),
                  torch.rand(buffer_rows, HOPPER_ACT, generator=gen) * 2 - 1, torch.randn(buffer_rows, generator=gen),
                  torch.randn(buffer_rows, HOPPER_OBS, generator=gen), torch.zeros(buffer_rows))
    cfg = SACConfig(hidden=hidden, layers=layers, batch_size=batch)
    agents = [SAC(HOPPER_OBS, HOPPER_ACT, cfg, seed=s) for s in range(seeds)]
    if not batched:
        return lambda: [a.update(*buf.sample(batch, gen)) for a in agents]
    learner = SeedBatchedSAC.from_agents(agents)

    def step() -> None:
        parts = [buf.sample(batch, gen) for _ in range(seeds)]
        learner.update(*(torch.stack(p) for p in zip(*parts, strict=True)))
    return step


def _peak_rss(seeds: int, batched: bool, updates: int) -> float:
    out = subprocess.run([sys.executable, "-c", _RSS_SCRIPT, str(seeds), "batched" if batched else "separate",
                          str(updates)], capture_output=True, text=True, check=True)
    return float(json.loads(out.stdout.splitlines()[-1])["max_rss_mb"])


def seed_rows(sizes: Sizes) -> list[Row]:
    updates = 1000 if not sizes.quick else 20
    block = max(updates // 20, 1)
    rows = []
    dims = (sizes.sac_batch, sizes.sac_hidden, sizes.sac_layers, sizes.sac_buffer)
    for seeds in SEED_COUNTS:
        # One seed alone is timed in every row, interleaved with the others: the ratios to it hold on a
        # machine whose load changes between rows.
        fns = {"batched": _setup(seeds, True, *dims), "separate": _setup(seeds, False, *dims),
               "one": _setup(1, False, *dims)}
        t = measure_interleaved(fns, updates, warmup=block, block=block)
        epoch_batched, epoch_separate = t["batched"].median * updates, t["separate"].median * updates
        one_seed = t["one"].median * updates
        rss = {k: _peak_rss(seeds, k == "batched", 2 * block) for k in ("batched", "separate")}
        rows.append(Row(
            f"seeds[S={seeds}]", "seeds", epoch_batched, "s/epoch", t["batched"].repeats,
            f"one epoch of SAC updates ({updates} x batch {sizes.sac_batch}, {sizes.sac_layers}x{sizes.sac_hidden}, "
            f"twin critics) for {seeds} seed(s) in trials.agent.seed_batch.SeedBatchedSAC, each seed its own batch",
            baseline=f"{seeds} separate",
            baseline_what=f"{seeds} trials.agent.sac.SAC learners updated one after another",
            baseline_value=epoch_separate,
            details={**t["batched"].summary(), "one_seed_s_per_epoch": one_seed,
                     "cost_vs_one_seed": epoch_batched / one_seed,
                     "separate_cost_vs_one_seed": epoch_separate / one_seed,
                     "peak_rss_mb_batched": round(rss["batched"], 1),
                     "peak_rss_mb_separate": round(rss["separate"], 1)}))
    return rows


def _rollout_step(seeds: int, stacked: bool, elites: int, hidden: int, layers: int, rows: int = 1024):
    """The model forward of one rollout step for ``seeds`` seeds, each with its own pool's elites and its
    own rows: one ensemble of ``seeds x elites`` members, or ``seeds`` ensembles called in turn."""
    gen = torch.Generator().manual_seed(0)
    obs = [torch.randn(rows, HOPPER_OBS, generator=gen) for _ in range(seeds)]
    act = [torch.rand(rows, HOPPER_ACT, generator=gen) * 2 - 1 for _ in range(seeds)]
    if not stacked:
        pools = [EnsembleDynamics(elites, HOPPER_OBS, HOPPER_ACT, hidden, layers) for _ in range(seeds)]
        return lambda: [p.predict(o, a) for p, o, a in zip(pools, obs, act, strict=True)]
    pool = EnsembleDynamics(seeds * elites, HOPPER_OBS, HOPPER_ACT, hidden, layers)
    x = torch.cat([torch.cat([o, a], -1).expand(elites, -1, -1) for o, a in zip(obs, act, strict=True)])

    @torch.no_grad()
    def step() -> None:
        pool.forward_normalized((x - pool.in_mean) / pool.in_std)
    return step


def rollout_stack_rows(sizes: Sizes) -> list[Row]:
    repeats = 200 if not sizes.quick else 4
    rows = []
    for seeds in SEED_COUNTS[1:]:
        dims = (sizes.rollout_elites, sizes.ens_hidden, sizes.ens_layers)
        t = measure_interleaved({"stacked": _rollout_step(seeds, True, *dims),
                                 "separate": _rollout_step(seeds, False, *dims)}, repeats, warmup=5, block=10)
        rows.append(Row(
            f"seeds_rollout[S={seeds}]", "seeds", t["stacked"].median, "s/step", t["stacked"].repeats,
            f"one rollout step's model forward, 1,024 rows per seed through {sizes.rollout_elites} elites of "
            f"{sizes.ens_layers}x{sizes.ens_hidden}, {seeds} seeds' pools stacked into one ensemble call",
            baseline=f"{seeds} calls", baseline_what=f"{seeds} pools called one after another",
            baseline_value=t["separate"].median,
            details=t["stacked"].summary()))
    return rows


def precision_rows(sizes: Sizes) -> list[Row]:
    """Group ``seeds_bf16`` (issue 25, item 3): the seed-batched SAC update (S = 1, 2, 4) with its matrix
    multiplies in bfloat16 under autocast against float32, interleaved. A measurement only: the product's
    SAC update runs in float32 (bfloat16 would change what is learned; whether it pays is what this asks)."""
    updates = 1000 if not sizes.quick else 20
    block = max(updates // 20, 1)
    dims = (sizes.sac_batch, sizes.sac_hidden, sizes.sac_layers, sizes.sac_buffer)
    rows = []
    for seeds in SEED_COUNTS:
        f32 = _setup(seeds, True, *dims)
        b16 = _setup(seeds, True, *dims)

        def in_bf16(step=b16) -> None:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                step()

        t = measure_interleaved({"bfloat16": in_bf16, "float32": f32}, updates, warmup=block, block=block)
        rows.append(Row(
            f"seeds[S={seeds},bfloat16]", "seeds_bf16", t["bfloat16"].median, "s/update", t["bfloat16"].repeats,
            f"one update of trials.agent.seed_batch.SeedBatchedSAC for {seeds} seed(s) (batch {sizes.sac_batch} "
            f"each, {sizes.sac_layers}x{sizes.sac_hidden}, twin critics, fused Adam) under "
            f"torch.autocast('cpu', bfloat16): forward and backward products in bfloat16, weights and Adam in "
            f"float32",
            baseline="float32", baseline_what="the same update in float32, interleaved",
            baseline_value=t["float32"].median,
            details={"bfloat16": t["bfloat16"].summary(), "float32": t["float32"].summary()},
        ))
    return rows


def compile_rows(sizes: Sizes) -> list[Row]:
    """Group ``seeds_compile`` (issue 25, item 3): the seed-batched SAC update (S = 1, 2, 4) compiled whole
    with ``torch.compile`` (inductor, static shapes) against the eager update, interleaved, each S after a
    dynamo reset (its own compilation). A measurement only: the product runs the eager update unless this
    shows a gain (on the 2-core AMD EPYC of 2026-12-06 it lost: docs/results.md)."""
    updates = 300 if not sizes.quick else 10
    block = max(updates // 30, 1)
    dims = (sizes.sac_batch, sizes.sac_hidden, sizes.sac_layers, sizes.sac_buffer)
    rows = []
    for seeds in SEED_COUNTS if not sizes.quick else SEED_COUNTS[:1]:  # quick: one compilation (~40 s)
        torch._dynamo.reset()
        eager = _setup(seeds, True, *dims)
        compiled = _setup(seeds, True, *dims)
        learner = next(c.cell_contents for c in compiled.__closure__ or ()
                       if isinstance(c.cell_contents, SeedBatchedSAC))
        learner.update = torch.compile(learner.update, dynamic=False)  # type: ignore[method-assign]
        start = time.perf_counter()
        for _ in range(3):  # the first calls compile (and recompile once the optimiser state exists)
            compiled()
        compile_seconds = time.perf_counter() - start
        t = measure_interleaved({"compiled": compiled, "eager": eager}, updates, warmup=block, block=block)
        rows.append(Row(
            f"seeds[S={seeds},compiled]", "seeds_compile", t["compiled"].median, "s/update", t["compiled"].repeats,
            f"one update of trials.agent.seed_batch.SeedBatchedSAC for {seeds} seed(s) (batch {sizes.sac_batch} "
            f"each, {sizes.sac_layers}x{sizes.sac_hidden}, twin critics, fused Adam), the whole update under "
            f"torch.compile (inductor, dynamic=False); compiling took {compile_seconds:.0f} s",
            baseline="eager", baseline_what="the same update eager, interleaved",
            baseline_value=t["eager"].median,
            details={"compiled": t["compiled"].summary(), "eager": t["eager"].summary(),
                     "compile_seconds": compile_seconds},
        ))
    return rows
