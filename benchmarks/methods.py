"""The newer methods' costs (group ``methods``), each against plain MOPO measured in the same run:

- the SAC update with 10 critics (RAVL's ensemble, one batched network) and with EDAC's eta, against 2;
- MOBILE's update-time penalty on a batch's model rows plus the update, against the update alone;
- one rollout round in the true simulator (``dynamics.kind: true``, batched ``mujoco.rollout``) against
  one in the learned 7-member model, both from the same 50,000 halfcheetah-random states (halfcheetah never
  terminates, so both rounds store the same number of transitions).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch

from benchmarks.report import Row
from benchmarks.sizes import HOPPER_ACT, HOPPER_OBS, Sizes
from benchmarks.timing import measure_interleaved
from trials.agent.mobile import bellman_penalty
from trials.agent.sac import SAC, SACConfig
from trials.config import DynamicsConfig
from trials.data.dataset import load_hdf5
from trials.models.dynamics import EnsembleDynamics
from trials.rollouts.penalties import PENALTIES
from trials.rollouts.replay import ReplayBuffer
from trials.rollouts.rollout import rollout
from trials.rollouts.true_dynamics import Simulator, true_rollout


def _buffer(rows: int, gen: torch.Generator) -> ReplayBuffer:
    buf = ReplayBuffer(rows, HOPPER_OBS, HOPPER_ACT)
    buf.add_batch(torch.randn(rows, HOPPER_OBS, generator=gen), torch.rand(rows, HOPPER_ACT, generator=gen) * 2 - 1,
                  torch.randn(rows, generator=gen), torch.randn(rows, HOPPER_OBS, generator=gen), torch.zeros(rows))
    return buf


def critic_ensembles(sizes: Sizes) -> list[Row]:
    """SAC updates with N = 2, 10 critics and N = 10 with eta = 1, interleaved."""
    gen = torch.Generator().manual_seed(0)
    buf = _buffer(sizes.sac_buffer, gen)
    base = SACConfig(hidden=sizes.sac_hidden, layers=sizes.sac_layers, batch_size=sizes.sac_batch)
    variants = {"n2": base, "n10": base.model_copy(update={"num_critics": 10}),
                "n10_eta1": base.model_copy(update={"num_critics": 10, "eta": 1.0})}
    agents = {k: SAC(HOPPER_OBS, HOPPER_ACT, cfg, seed=0) for k, cfg in variants.items()}
    fns = {k: (lambda a=a: a.update(*buf.sample(sizes.sac_batch, gen))) for k, a in agents.items()}
    t = measure_interleaved(fns, sizes.sac_repeats, warmup=sizes.sac_block, block=sizes.sac_block)
    rows = []
    for key, label in (("n10", "10 critics"), ("n10_eta1", "10 critics, eta 1 (RAVL)")):
        rows.append(Row(
            f"sac_update[{key}]", "methods", t[key].median, "s/update", t[key].repeats,
            f"trials.agent.sac.SAC.update with {label}: one batched critic ensemble, batch {sizes.sac_batch}, "
            f"{sizes.sac_layers}x{sizes.sac_hidden}; blocks of {sizes.sac_block} alternate with the others'",
            baseline="2 critics", baseline_what="the same update with SAC's twin critics (num_critics 2, eta 0)",
            baseline_value=t["n2"].median,
            details={**t[key].summary(), "cost_vs_2_critics": t[key].median / t["n2"].median}))
    return rows


def mobile_update(sizes: Sizes) -> Row:
    """MOBILE's penalty on the model rows of a batch plus the SAC update, against the update alone."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    buf = _buffer(sizes.sac_buffer, gen)
    dyn = DynamicsConfig()
    model = EnsembleDynamics(sizes.rollout_members, HOPPER_OBS, HOPPER_ACT, dyn.hidden, dyn.layers)
    elites = torch.arange(sizes.rollout_elites)
    agent = SAC(HOPPER_OBS, HOPPER_ACT, SACConfig(hidden=sizes.sac_hidden, layers=sizes.sac_layers), seed=0)
    n_real = round(0.05 * sizes.sac_batch)
    samples = 10

    def plain() -> None:
        agent.update(*buf.sample(sizes.sac_batch, gen))

    def mobile() -> None:
        obs, act, rew, next_obs, done = buf.sample(sizes.sac_batch, gen)
        u = bellman_penalty(model, elites, agent, obs[n_real:], act[n_real:], samples, gen)
        rew[n_real:] -= u
        agent.update(obs, act, rew, next_obs, done)

    blocks = max(2, sizes.sac_block // 4)
    t = measure_interleaved({"plain": plain, "mobile": mobile}, max(blocks, sizes.sac_repeats // 4), warmup=blocks,
                            block=blocks)
    return Row(
        "mobile_update", "methods", t["mobile"].median, "s/update", t["mobile"].repeats,
        f"trials.agent.mobile.bellman_penalty on the {sizes.sac_batch - n_real} model rows of a {sizes.sac_batch}-row "
        f"batch ({samples} samples x {sizes.rollout_elites} elites of a {sizes.rollout_members}-member "
        f"{dyn.layers}x{dyn.hidden} ensemble: {samples * sizes.rollout_elites} actor and critic passes per row) "
        "plus the SAC update",
        baseline="SAC update", baseline_what="the same SAC update without the penalty (MOPO's update)",
        baseline_value=t["plain"].median,
        details={**t["mobile"].summary(), "cost_vs_update": t["mobile"].median / t["plain"].median})


def _halfcheetah_random(data_dir: Path, size: int) -> Path:
    path = data_dir / f"halfcheetah-random-{size}.hdf5"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "tuner.cli.main", "datasets", "generate", "--env", "halfcheetah",
                        "--level", "random", "--size", str(size), "--out", str(path), "--quiet"], check=True,
                       stdout=subprocess.DEVNULL)
    return path


def true_rollout_round(sizes: Sizes, data_dir: Path) -> Row:
    """One rollout round in the simulator against one in the learned ensemble, same start states."""
    ds = load_hdf5(_halfcheetah_random(data_dir, sizes.rollout_states))
    spec = ds.spec
    assert ds.qpos is not None and ds.qvel is not None
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    dyn = DynamicsConfig()
    model = EnsembleDynamics(sizes.rollout_members, spec.obs_dim, spec.act_dim, dyn.hidden, dyn.layers)
    model.out_std.fill_(1e-3)
    elites = torch.arange(sizes.rollout_elites)
    agent = SAC(spec.obs_dim, spec.act_dim, SACConfig(), seed=0)
    sim = Simulator(spec)
    start = torch.as_tensor(ds.observations, dtype=torch.float32)
    horizon = sizes.rollout_horizon
    buffer = ReplayBuffer(start.shape[0] * horizon, spec.obs_dim, spec.act_dim)
    stored: dict[str, int] = {}

    def learned() -> None:
        stats = rollout(model, elites, agent, start, horizon, spec.terminated, PENALTIES["max_aleatoric"], 1.0,
                        buffer, gen)
        stored["learned"] = stats.transitions

    def true() -> None:
        stored["true"] = true_rollout(sim, agent, start, ds.qpos, ds.qvel, horizon, buffer).transitions

    t = measure_interleaved({"learned": learned, "true": true}, sizes.rollout_repeats, warmup=1)
    return Row(
        "rollout[true]", "methods", t["true"].median, "s/round", t["true"].repeats,
        f"trials.rollouts.true_dynamics.true_rollout: {start.shape[0]} halfcheetah-random start states at their stored "
        f"simulator states, horizon {horizon}, all live rows of a step in one mujoco.rollout call "
        f"({sim.frame_skip} physics steps per action), one thread; {stored['true']} transitions stored",
        baseline="learned model", baseline_what=(
            f"trials.rollouts.rollout.rollout from the same states in a {sizes.rollout_members}-member "
            f"{dyn.layers}x{dyn.hidden} ensemble, penalty max_aleatoric ({stored['learned']} transitions)"),
        baseline_value=t["learned"].median,
        details={**t["true"].summary(), "cost_vs_learned": t["true"].median / t["learned"].median,
                 "transitions": stored["true"], "learned_transitions": stored["learned"]})


def method_rows(sizes: Sizes, data_dir: Path) -> list[Row]:
    return [*critic_ensembles(sizes), mobile_update(sizes), true_rollout_round(sizes, data_dir)]
