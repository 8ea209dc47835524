"""Where the time goes in the hot kernels: torch.profiler's per-op table for a few iterations of the SAC
update, the ensemble training step or a rollout round (the same set-ups as benchmarks.run), plus the
page faults and kernel time of those iterations::

    python -m benchmarks.profile sac [--iters 20] [--rows 25] [--sort self_cpu_time_total]
    python -m benchmarks.profile ensemble
    python -m benchmarks.profile rollout [--states 50000]
"""

from __future__ import annotations

import argparse
import resource
import time
from collections.abc import Callable

import torch
from torch.profiler import ProfilerActivity, profile

from benchmarks import compute
from benchmarks.baselines import LoopEnsemble
from benchmarks.sizes import HOPPER_ACT, HOPPER_OBS, full
from trials.agent.sac import SAC, SACConfig
from trials.config import DynamicsConfig
from trials.envs import hopper_terminated
from trials.models.dynamics import EnsembleDynamics, _decay_loss
from trials.rollouts.penalties import PENALTIES
from trials.rollouts.replay import ReplayBuffer
from trials.rollouts.rollout import rollout


def sac_step() -> Callable[[], None]:
    """One SAC update on a sampled batch, as in row sac_update."""
    sizes = full()
    gen = torch.Generator().manual_seed(0)
    buf = compute._random_buffer(sizes.sac_buffer, gen)
    agent = SAC(HOPPER_OBS, HOPPER_ACT, SACConfig(), seed=0)
    return lambda: agent.update(*buf.sample(sizes.sac_batch, gen))


def ensemble_step() -> Callable[[], None]:
    """One fit-style ensemble step, as in row ensemble_step."""
    sizes = full()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(sizes.ens_rows, HOPPER_OBS + HOPPER_ACT, generator=gen)
    y = torch.randn(sizes.ens_rows, HOPPER_OBS + 1, generator=gen)
    model = EnsembleDynamics(sizes.ens_members, HOPPER_OBS, HOPPER_ACT, sizes.ens_hidden, sizes.ens_layers)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)  # as fit builds it
    decays = DynamicsConfig().weight_decay

    def step() -> None:
        idx = torch.randint(0, sizes.ens_rows, (sizes.ens_members, sizes.ens_batch), generator=gen)
        compute.nll_step(model, opt, x[idx], y[idx], _decay_loss(model, decays))

    return step


def rollout_round(states: int, penalty: str, loop: bool) -> Callable[[], None]:
    """One rollout round, as in row rollout[penalty] (or its loop-over-members baseline)."""
    sizes = full()
    gen = torch.Generator().manual_seed(0)
    model = compute._healthy_model(sizes)
    ensemble = LoopEnsemble.from_ensemble(model) if loop else model
    agent = SAC(HOPPER_OBS, HOPPER_ACT, SACConfig(), seed=0)
    start = compute._healthy_states(states, gen)
    buffer = ReplayBuffer(states * sizes.rollout_horizon, HOPPER_OBS, HOPPER_ACT)
    elites = torch.arange(sizes.rollout_elites)
    return lambda: rollout(ensemble, elites, agent, start, sizes.rollout_horizon,  # type: ignore[arg-type]
                           hopper_terminated, PENALTIES[penalty], 1.0, buffer, gen)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("kernel", choices=["sac", "ensemble", "rollout"])
    p.add_argument("--iters", type=int, default=None, help="profiled iterations (default: 20, rollout 1)")
    p.add_argument("--rows", type=int, default=25, help="ops shown")
    p.add_argument("--sort", default="self_cpu_time_total")
    p.add_argument("--states", type=int, default=50_000, help="rollout start states")
    p.add_argument("--penalty", default="max_aleatoric", choices=list(PENALTIES))
    p.add_argument("--loop", action="store_true", help="rollout: the loop-over-members baseline instead")
    p.add_argument("--memory", action="store_true", help="also record allocations (profile_memory)")
    args = p.parse_args()
    torch.set_num_threads(1)
    fn = {"sac": sac_step, "ensemble": ensemble_step,
          "rollout": lambda: rollout_round(args.states, args.penalty, args.loop)}[args.kernel]()
    iters = args.iters or (1 if args.kernel == "rollout" else 20)
    for _ in range(2 if args.kernel == "rollout" else 10):  # warm-up
        fn()
    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    for _ in range(iters):
        fn()
    wall = (time.perf_counter() - start) / iters
    after = resource.getrusage(resource.RUSAGE_SELF)
    print(f"{args.kernel}: {wall * 1e3:.2f} ms per iteration unprofiled; "
          f"{(after.ru_minflt - before.ru_minflt) / iters:.0f} minor page faults and "
          f"{(after.ru_stime - before.ru_stime) / iters * 1e3:.1f} ms kernel (sys) time per iteration")
    with profile(activities=[ProfilerActivity.CPU], profile_memory=args.memory, record_shapes=False) as prof:
        for _ in range(iters):
            fn()
    print(prof.key_averages().table(sort_by=args.sort, row_limit=args.rows))


if __name__ == "__main__":
    main()
