"""The hot kernels of a trial, each against a baseline measured in the same run: the matmul peak, the SAC
update, the dynamics ensemble's training step and the model rollout round (one per penalty)."""

from __future__ import annotations

import torch

from benchmarks import flops
from benchmarks.baselines import LoopEnsemble, PlainSAC, sb3_available, sb3_sac
from benchmarks.report import Row, time_speedup
from benchmarks.sizes import HOPPER_ACT, HOPPER_OBS, Sizes
from benchmarks.timing import Timing, measure, measure_interleaved
from trials.agent.sac import SAC, SACConfig
from trials.config import DynamicsConfig, Precision
from trials.envs import hopper_terminated
from trials.models.dynamics import EnsembleDynamics, _decay_loss
from trials.rollouts.penalties import PENALTIES
from trials.rollouts.replay import ReplayBuffer
from trials.rollouts.rollout import rollout


def peak_matmul(sizes: Sizes) -> Row:
    """Row 1: fp32 ``torch.mm`` of two square matrices, the reference for "% of peak"."""
    n = sizes.peak_n
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(n, n, generator=gen), torch.randn(n, n, generator=gen)
    out = torch.empty(n, n)
    t = measure(lambda: torch.mm(a, b, out=out), sizes.peak_repeats, warmup=2)
    # The fastest repeat, not the median: a peak is what the core can do when nothing else runs on it.
    row = Row("peak_matmul", "peak", min(t.samples), "s/call", t.repeats,
              f"torch.mm of two {n}x{n} fp32 matrices into a preallocated output, "
              f"{torch.get_num_threads()} thread(s); the FASTEST of the repeats (other rows: medians)",
              flops=2.0 * n**3, flop_formula=f"2 * n^3 with n = {n}", details=t.summary())
    row.with_peak(None)
    row.peak_fraction = 1.0
    return row


def _random_buffer(rows: int, gen: torch.Generator) -> ReplayBuffer:
    buf = ReplayBuffer(rows, HOPPER_OBS, HOPPER_ACT)
    buf.add_batch(torch.randn(rows, HOPPER_OBS, generator=gen), torch.rand(rows, HOPPER_ACT, generator=gen) * 2 - 1,
                  torch.randn(rows, generator=gen), torch.randn(rows, HOPPER_OBS, generator=gen), torch.zeros(rows))
    return buf


def sac_update(sizes: Sizes) -> Row:
    """Row 2: one update of ``trials.agent.sac.SAC`` (batch sampled from a replay buffer) against
    stable-baselines3's ``SAC.train(gradient_steps=1)`` (or, without SB3, a plain eager SAC)."""
    gen = torch.Generator().manual_seed(0)
    buf = _random_buffer(sizes.sac_buffer, gen)
    cfg = SACConfig(hidden=sizes.sac_hidden, layers=sizes.sac_layers, batch_size=sizes.sac_batch)
    agent = SAC(HOPPER_OBS, HOPPER_ACT, cfg, seed=0)
    plain = PlainSAC(HOPPER_OBS, HOPPER_ACT, sizes.sac_hidden, sizes.sac_layers)
    fns = {"ours": lambda: agent.update(*buf.sample(sizes.sac_batch, gen)),
           "plain": lambda: plain.update(*buf.sample(sizes.sac_batch, gen))}
    has_sb3 = sb3_available()
    if has_sb3:
        sb3 = sb3_sac(HOPPER_OBS, HOPPER_ACT, sizes.sac_hidden, sizes.sac_layers, sizes.sac_batch, sizes.sac_buffer)
        torch.set_num_threads(1)  # whatever SB3 did to the thread count
        fns["sb3"] = lambda: sb3.train(gradient_steps=1, batch_size=sizes.sac_batch)
    t = measure_interleaved(fns, sizes.sac_repeats, warmup=sizes.sac_block, block=sizes.sac_block)
    base_name = "sb3" if has_sb3 else "plain"
    per_sample = flops.sac_update(HOPPER_OBS, HOPPER_ACT, sizes.sac_hidden, sizes.sac_layers)
    return Row(
        "sac_update", "sac", t["ours"].median, "s/update", t["ours"].repeats,
        f"trials.agent.sac.SAC.update on a batch of {sizes.sac_batch} sampled from a "
        f"{sizes.sac_buffer}-row ReplayBuffer "
        f"(obs {HOPPER_OBS}, act {HOPPER_ACT}, {sizes.sac_layers}x{sizes.sac_hidden} actor and twin critics); "
        f"blocks of {sizes.sac_block} updates alternate with the baselines'",
        flops=float(per_sample * sizes.sac_batch),
        flop_formula="batch * [F_actor + 2F_critic (target) + 2 train(critic) + train(actor) + 2F_critic "
                     "+ 2G_critic (actor step through frozen critics)], see benchmarks/flops.py",
        baseline="sb3 SAC.train" if has_sb3 else "plain eager SAC",
        baseline_what=("stable-baselines3 SAC.train(gradient_steps=1, batch_size=batch), net_arch "
                       f"[{sizes.sac_hidden}]*{sizes.sac_layers}, auto entropy, replay buffer pre-filled with "
                       f"{sizes.sac_buffer} random Hopper-sized transitions") if has_sb3
        else ("benchmarks.baselines.PlainSAC, a textbook eager update with two separate critic MLPs "
              "(stable-baselines3 not installed: pip install -e '.[bench]')"),
        baseline_value=t[base_name].median,
        details={**t["ours"].summary(), "plain_eager_s": t["plain"].median,
                 "speedup_vs_plain_eager": time_speedup(t["ours"].median, t["plain"].median),
                 **({"sb3_s": t["sb3"].median} if has_sb3 else {"sb3": "not installed"})},
    )


def nll_step(model: EnsembleDynamics | LoopEnsemble, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
              decay: torch.Tensor) -> None:
    """The loss and update of one step of ``trials.models.dynamics.fit`` (Gaussian NLL per member, log-variance
    bound penalty, L2 decay), for either ensemble implementation."""
    mean, logvar = model.forward_normalized(x)
    nll = (((mean - y) ** 2) * torch.exp(-logvar) + logvar).mean(dim=(1, 2)).sum()
    loss = nll + 0.01 * (model.max_logvar.sum() - model.min_logvar.sum()) + decay
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def ensemble_step(sizes: Sizes) -> Row:
    """Row 3: one ``fit``-style gradient step of ``EnsembleDynamics`` against the same step of 7 separate
    ``nn.Sequential`` members run in a Python loop."""
    m, b = sizes.ens_members, sizes.ens_batch
    gen = torch.Generator().manual_seed(0)
    x_train = torch.randn(sizes.ens_rows, HOPPER_OBS + HOPPER_ACT, generator=gen)
    y_train = torch.randn(sizes.ens_rows, HOPPER_OBS + 1, generator=gen)
    order = torch.argsort(torch.rand(m, sizes.ens_rows, generator=gen), dim=1)
    decays = DynamicsConfig().weight_decay
    ours = EnsembleDynamics(m, HOPPER_OBS, HOPPER_ACT, sizes.ens_hidden, sizes.ens_layers)
    loop = LoopEnsemble.from_ensemble(ours)
    # Ours: the optimiser fit builds (fused Adam); the baseline: Adam's default, as a straightforward loop would.
    opt_ours = torch.optim.Adam(ours.parameters(), lr=1e-3, fused=True)
    opt_loop = torch.optim.Adam(loop.parameters(), lr=1e-3)
    cursor = {"ours": 0, "loop": 0}

    def batch(name: str) -> tuple[torch.Tensor, torch.Tensor]:
        start = cursor[name] % (sizes.ens_rows - b)
        cursor[name] += b
        idx = order[:, start:start + b]  # [M, b]: each member its own shuffle, as in fit
        return x_train[idx], y_train[idx]

    def step_ours() -> None:
        nll_step(ours, opt_ours, *batch("ours"), _decay_loss(ours, decays))

    def step_loop() -> None:
        nll_step(loop, opt_loop, *batch("loop"), loop.decay_loss(decays))

    t = measure_interleaved({"ours": step_ours, "loop": step_loop}, sizes.ens_repeats, warmup=sizes.ens_block,
                            block=sizes.ens_block)
    return Row(
        "ensemble_step", "ensemble", t["ours"].median, "s/step", t["ours"].repeats,
        f"one fit-style step of trials.models.dynamics.EnsembleDynamics "
        f"({m} members, {sizes.ens_layers}x{sizes.ens_hidden}, "
        f"{b} rows per member gathered from a {sizes.ens_rows}-row training set): forward_normalized, Gaussian NLL + "
        f"log-variance bounds + L2 decay (as in fit), backward, fused Adam (as fit builds it)",
        flops=float(flops.ensemble_step(m, b, HOPPER_OBS, HOPPER_ACT, sizes.ens_hidden, sizes.ens_layers)),
        flop_formula="members * batch * (3 F_member - 2 d0 d1), F_member = 2 sum d_i d_(i+1) over "
                     f"{flops.dynamics_dims(HOPPER_OBS, HOPPER_ACT, sizes.ens_hidden, sizes.ens_layers)}",
        baseline=f"loop over {m} members",
        baseline_what=f"{m} separate nn.Sequential members (benchmarks.baselines.LoopEnsemble) run in a Python "
                      "loop, outputs stacked, same loss, torch.optim.Adam with its defaults",
        baseline_value=t["loop"].median,
        details=t["ours"].summary(),
    )


def _healthy_model(sizes: Sizes) -> EnsembleDynamics:
    """A random ensemble whose predicted deltas and rewards are ~1e-3: hopper states stay healthy, so every
    step of the round runs on the whole batch (the work is that of a full-size round all the same)."""
    model = EnsembleDynamics(sizes.rollout_members, HOPPER_OBS, HOPPER_ACT, DynamicsConfig().hidden,
                             DynamicsConfig().layers)
    model.out_std.fill_(1e-3)
    return model


def _healthy_states(n: int, gen: torch.Generator) -> torch.Tensor:
    """Hopper observations well inside the healthy region (height 1.25, small angles and velocities)."""
    obs = (torch.rand(n, HOPPER_OBS, generator=gen) - 0.5) * 0.1
    obs[:, 0] += 1.25
    return obs


def rollout_rounds(sizes: Sizes) -> list[Row]:
    """Row 4: ``trials.rollouts.rollout.rollout`` for every penalty; for max_aleatoric also the same rollout with the
    ensemble replaced by a loop over separate members (interleaved with ours)."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    model = _healthy_model(sizes)
    loop = LoopEnsemble.from_ensemble(model)
    elites = torch.arange(sizes.rollout_elites)
    agent = SAC(HOPPER_OBS, HOPPER_ACT, SACConfig(), seed=0)
    start = _healthy_states(sizes.rollout_states, gen)
    buffer = ReplayBuffer(sizes.rollout_states * sizes.rollout_horizon, HOPPER_OBS, HOPPER_ACT)
    stats: dict[str, object] = {}

    def round_fn(name: str, ensemble: EnsembleDynamics | LoopEnsemble, penalty: str,
                 precision: Precision = "float32") -> None:
        stats[name] = rollout(ensemble, elites, agent, start, sizes.rollout_horizon,  # type: ignore[arg-type]
                              hopper_terminated, PENALTIES[penalty], 1.0, buffer, gen, precision=precision)

    dyn = DynamicsConfig()
    member_dims = flops.dynamics_dims(HOPPER_OBS, HOPPER_ACT, dyn.hidden, dyn.layers)
    actor_dims = flops.mlp_dims(HOPPER_OBS, SACConfig().hidden, SACConfig().layers, 2 * HOPPER_ACT)
    per_transition = flops.rollout_transition(sizes.rollout_members, HOPPER_OBS, HOPPER_ACT, dyn.hidden, dyn.layers,
                                              SACConfig().hidden, SACConfig().layers)
    # One warm-up round each, then every penalty (max_aleatoric first, interleaved with the loop baseline).
    bf16 = lambda: round_fn("bf16", model, "max_aleatoric", "bfloat16")  # noqa: E731
    measure_interleaved({"ours": lambda: round_fn("warm", model, "max_aleatoric"),
                         "loop": lambda: round_fn("warm", loop, "max_aleatoric"), "bf16": bf16},
                        repeats=0, warmup=1)
    rows = []
    for penalty in sorted(PENALTIES, key=lambda p: p != "max_aleatoric"):
        fns = {"ours": lambda p=penalty: round_fn("ours", model, p)}
        if penalty == "max_aleatoric":
            fns["loop"] = lambda: round_fn("loop", loop, "max_aleatoric")
            fns["bf16"] = bf16
        repeats = sizes.rollout_baseline_repeats if penalty == "max_aleatoric" else sizes.rollout_repeats
        t = measure_interleaved(fns, repeats, warmup=0)
        r = stats["ours"]
        transitions = r.transitions  # type: ignore[attr-defined]
        what = (f"trials.rollouts.rollout.rollout: {sizes.rollout_states} start states, "
            f"horizon {sizes.rollout_horizon}, "
                f"{sizes.rollout_members} members ({sizes.rollout_elites} elites, {dyn.layers}x{dyn.hidden}), penalty "
                f"{penalty}, SAC actor {actor_dims}, into a ReplayBuffer of {buffer.capacity} rows; the model "
                "predicts deltas ~1e-3 so no state terminates" if penalty == "max_aleatoric"
                else f"as rollout[max_aleatoric] with penalty {penalty}")
        row = Row(
            f"rollout[{penalty}]", "rollout", t["ours"].median, "s/round", t["ours"].repeats, what,
            flops=float(per_transition * transitions),
            flop_formula=f"stored transitions * ({sizes.rollout_members} F_member + F_actor), F_member = 2 sum "
                         f"d_i d_(i+1) over {member_dims}, F_actor over {actor_dims}",
            details={**t["ours"].summary(), "transitions": transitions,
                     "avg_batch_per_step": transitions / sizes.rollout_horizon,
                     "terminated_fraction": r.terminated_fraction},  # type: ignore[attr-defined]
        )
        if "loop" in t:
            row.baseline = f"loop over {sizes.rollout_members} members"
            row.baseline_what = ("the same trials.rollouts.rollout.rollout with the ensemble replaced by "
                                 f"{sizes.rollout_members} nn.Sequential members predicted in a Python loop "
                                 "(benchmarks.baselines.LoopEnsemble, same weights)")
            row.baseline_value = t["loop"].median
            row.speedup = time_speedup(t["ours"].median, t["loop"].median)
            row.details["baseline_minor_faults_per_call"] = round(t["loop"].faults_per_call, 1)
        rows.append(row)
        if "bf16" in t:
            rows.append(_bfloat16_rollout_row(row, t["bf16"], sizes))
    return rows


def _bfloat16_rollout_row(fp32_row: Row, timing: Timing, sizes: Sizes) -> Row:
    """Row 4b: the same round with ``precision="bfloat16"`` (interleaved with the float32 round); its
    "% of peak" is against the float32 peak, so the bfloat16 matmul peak is given beside it."""
    n = sizes.peak_n
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=gen, dtype=torch.bfloat16)
    b = torch.randn(n, n, generator=gen, dtype=torch.bfloat16)
    peak = measure(lambda: torch.mm(a, b), max(sizes.peak_repeats // 2, 1), warmup=1)
    return Row(
        "rollout[max_aleatoric,bfloat16]", "rollout", timing.median, "s/round", timing.repeats,
        "as rollout[max_aleatoric] with rollout.precision=bfloat16: the ensemble's matmuls autocast to "
        "bfloat16 (actor, penalty, sampling and storage in float32); % of peak against the float32 peak",
        flops=fp32_row.flops, flop_formula="as rollout[max_aleatoric]",
        baseline="float32 round (ours)", baseline_what="row rollout[max_aleatoric], interleaved with this one",
        baseline_value=fp32_row.value,
        details={**timing.summary(), "bfloat16_matmul_peak_gflops": round(2.0 * n**3 / min(peak.samples) / 1e9, 1)},
    )
