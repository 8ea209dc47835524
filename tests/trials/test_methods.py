"""The newer design choices: critic ensembles with EDAC's diversity term (RAVL), MOBILE's penalty and the
true simulator as the rollout model, each checked against a hand computation or the real env."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.trials.test_mopo import tiny_config
from trials.agent.mobile import bellman_penalty
from trials.agent.sac import SAC, SACConfig
from trials.config import ConfigError, TrialConfig
from trials.data.baselines import hand_tuned
from trials.data.dataset import load_hdf5
from trials.envs import ENVS, set_state
from trials.models.dynamics import EnsembleDynamics
from trials.rollouts.replay import ReplayBuffer
from trials.rollouts.true_dynamics import Simulator, true_rollout
from trials.run.build import build_trainer
from trials.run.mopo import FINISHED

OBS, ACT = 5, 2


def _batch(seed: int, n: int = 16) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, OBS, generator=g), torch.rand(n, ACT, generator=g) * 2 - 1, torch.randn(n, generator=g),
            torch.randn(n, OBS, generator=g), (torch.rand(n, generator=g) < 0.1).float())


def _plain_sac_update(agent: SAC, obs: torch.Tensor, act: torch.Tensor, rew: torch.Tensor, next_obs: torch.Tensor,
                      done: torch.Tensor) -> None:
    """SAC's update as it was before critic ensembles existed (twin critics, entropy in the target)."""
    cfg, alpha = agent.cfg, agent.log_alpha.exp().detach()
    with torch.no_grad():
        next_act, next_logp = agent.actor(next_obs, gen=agent.gen)
        q_next = agent.critic_target(torch.cat([next_obs, next_act], -1)).squeeze(-1).min(0).values
        target = rew + cfg.gamma * (1.0 - done) * (q_next - alpha * next_logp)
    q = agent.critic(torch.cat([obs, act], -1)).squeeze(-1)
    loss = (q - target).pow(2).mean(1).sum()
    agent.critic_opt.zero_grad(set_to_none=True)
    loss.backward()
    agent.critic_opt.step()
    new_act, logp = agent.actor(obs, gen=agent.gen)
    agent.critic.requires_grad_(False)
    actor_loss = (alpha * logp - agent.critic(torch.cat([obs, new_act], -1)).squeeze(-1).min(0).values).mean()
    agent.critic.requires_grad_(True)
    agent.actor_opt.zero_grad(set_to_none=True)
    actor_loss.backward()
    agent.actor_opt.step()
    alpha_loss = -(agent.log_alpha * (logp.detach() + agent.target_entropy)).mean()
    agent.alpha_opt.zero_grad(set_to_none=True)
    alpha_loss.backward()
    agent.alpha_opt.step()
    with torch.no_grad():
        torch._foreach_lerp_(list(agent.critic_target.parameters()), list(agent.critic.parameters()), cfg.tau)


def test_two_critics_without_eta_are_plain_sac_exactly() -> None:
    cfg = SACConfig(hidden=16, batch_size=16)
    assert (cfg.num_critics, cfg.eta, cfg.deterministic_backup, cfg.target_floor) == (2, 0.0, False, None)
    torch.manual_seed(0)
    new = SAC(OBS, ACT, cfg, seed=1)
    torch.manual_seed(0)
    old = SAC(OBS, ACT, cfg, seed=1)
    for step in range(6):
        batch = _batch(step)
        new.update(*batch)
        _plain_sac_update(old, *batch)
    for (name, a), b in zip(new.state_dict().items(), old.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def _diversity_by_hand(agent: SAC, obs: torch.Tensor, act: torch.Tensor) -> float:
    """Member by member, pair by pair, in float64."""
    n, grads = agent.cfg.num_critics, []
    for i in range(n):
        a = act.clone().requires_grad_(True)
        q_i = agent.critic(torch.cat([obs, a], -1))[i].sum()
        (g,) = torch.autograd.grad(q_i, a)
        grads.append(g.double() / (g.double().norm(dim=-1, keepdim=True) + 1e-10))
    total = 0.0
    for b in range(obs.shape[0]):
        total += sum(float(grads[i][b] @ grads[j][b]) for i in range(n) for j in range(n) if i != j)
    return total / obs.shape[0] / (n - 1)


def test_edac_diversity_term_matches_a_hand_computation_and_trains_the_critics() -> None:
    torch.manual_seed(0)
    agent = SAC(OBS, ACT, SACConfig(hidden=8, layers=1, num_critics=4, eta=1.0), seed=0)
    obs, act = _batch(3, n=7)[:2]
    got = agent.diversity_loss(obs, act)
    assert float(got.detach()) == pytest.approx(_diversity_by_hand(agent, obs, act), rel=1e-5, abs=1e-6)
    assert -1.0 <= float(got.detach()) <= 3.0  # N - 1 = 3 pairs per member, each a cosine
    got.backward()  # the term reaches every weight matrix (a double backward); biases of the Q head cannot
    weights = [layer.weight for layer in (*agent.critic.hidden, agent.critic.out)]
    assert all(w.grad is not None and torch.isfinite(w.grad).all() and float(w.grad.abs().sum()) > 0
               for w in weights)


def test_critic_ensemble_takes_the_minimum_over_all_members() -> None:
    torch.manual_seed(0)
    agent = SAC(OBS, ACT, SACConfig(hidden=8, num_critics=10), seed=0)
    assert agent.critic.members == 10 and agent.critic_target.members == 10
    states = torch.randn(3, 4, OBS)
    state = agent.gen.get_state()
    value = agent.target_value(states)
    agent.gen.set_state(state)
    flat = states.reshape(-1, OBS)
    acts = agent.actor(flat, with_log_prob=False, gen=agent.gen)[0]
    per_member = agent.critic_target(torch.cat([flat, acts], -1)).squeeze(-1)  # [10, 12]
    assert value.shape == (3, 4)
    assert torch.allclose(value.reshape(-1), per_member.min(0).values)
    agent.update(*_batch(0))  # the ensemble trains (a smoke check that shapes agree with N = 10)
    assert all(torch.isfinite(p).all() for p in agent.parameters())


def test_deterministic_backup_and_target_floor_change_the_td_target() -> None:
    base = SACConfig(hidden=8)
    batch = _batch(1)
    after: dict[str, torch.Tensor] = {}
    for name, cfg in {"plain": base, "det": base.model_copy(update={"deterministic_backup": True}),
                      "floor": base.model_copy(update={"target_floor": 1e6})}.items():
        torch.manual_seed(0)
        agent = SAC(OBS, ACT, cfg, seed=0)
        agent.update(*batch)
        after[name] = torch.cat([p.flatten() for p in agent.critic.parameters()])
    assert not torch.equal(after["plain"], after["det"])
    assert not torch.equal(after["plain"], after["floor"])


def test_mobile_penalty_is_the_std_over_elites_of_the_mean_bellman_value() -> None:
    torch.manual_seed(0)
    model = EnsembleDynamics(4, OBS, ACT, hidden=8, layers=2)
    model.set_normalizer(torch.randn(50, OBS + ACT), torch.randn(50, OBS + 1), normalize_targets=False)
    agent = SAC(OBS, ACT, SACConfig(hidden=8), seed=0)
    obs, act = _batch(2, n=6)[:2]
    elites, samples = torch.tensor([0, 2, 3]), 5
    gen = torch.Generator().manual_seed(7)
    g_state, a_state = gen.get_state(), agent.gen.get_state()
    got = bellman_penalty(model, elites, agent, obs, act, samples, gen)

    gen.set_state(g_state)
    agent.gen.set_state(a_state)
    with torch.no_grad():
        mean, std = model.predict(obs, act)
        noise = torch.randn((samples, 3, 6, OBS + 1), generator=gen)
        next_obs = torch.stack([torch.stack([obs + mean[e, :, :-1] + std[e, :, :-1] * noise[k, j, :, :-1]
                                             for j, e in enumerate(elites.tolist())]) for k in range(samples)])
        value = agent.target_value(next_obs).double()  # [K, E, B]
    for b in range(6):
        per_elite = [float(value[:, j, b].mean()) for j in range(3)]
        m = sum(per_elite) / 3
        expected = math.sqrt(sum((v - m) ** 2 for v in per_elite) / 2)  # unbiased, as torch.std
        assert float(got[b]) == pytest.approx(expected, rel=1e-4, abs=1e-6)


def test_mobile_penalises_model_rows_only_and_trains(hopper_random_file: Path, tmp_path: Path) -> None:
    cfg = tiny_config(hopper_random_file, tmp_path, penalty="mobile", lam=2.0, mobile_samples=3, epochs=2)
    trainer = build_trainer(cfg, load_hdf5(hopper_random_file))
    trainer.run_epoch()  # fills the model buffer
    assert trainer.history[-1]["penalty_mean"] > 0
    batch, n_real = trainer._batch()
    before = batch[2].clone()
    u = trainer._mobile_penalty(batch, n_real)
    assert 0 < n_real < len(before) and u.shape == (len(before) - n_real,)
    assert torch.equal(batch[2][:n_real], before[:n_real])
    assert torch.allclose(batch[2][n_real:], before[n_real:] - 2.0 * u)
    while not trainer.done:
        m = trainer.run_epoch()
    assert trainer.status == FINISHED and math.isfinite(m["q_mean"]) and m["penalty_max"] >= m["penalty_mean"]
    with pytest.raises(ConfigError, match="num_elites >= 2"):
        tiny_config(hopper_random_file, tmp_path, penalty="mobile", num_elites=1)


@pytest.mark.parametrize("env", ["hopper", "halfcheetah", "walker2d"])
def test_batched_simulator_matches_the_gymnasium_env(env: str) -> None:
    spec = ENVS[env]
    sim, real = Simulator(spec), spec.make()
    real.reset(seed=0)
    rng = np.random.default_rng(0)
    init_qpos = real.unwrapped.init_qpos  # type: ignore[attr-defined]
    qpos = init_qpos + rng.normal(0, 0.1, (40, spec.qpos_dim))
    qpos[:, 0] = rng.normal(0, 3, 40)  # anywhere along the track
    qpos[:8, 1] = 0.5  # fallen: hopper and walker2d terminate there (below their healthy height)
    qvel = rng.normal(0, 1.0, (40, spec.qvel_dim))
    act = rng.uniform(-1, 1, (40, spec.act_dim))
    next_qpos, next_qvel, obs, rew, done = sim.step(qpos, qvel, act)
    for i in range(40):
        set_state(real, qpos[i], qvel[i])
        o, r, term, *_ = real.step(act[i])
        np.testing.assert_allclose(obs[i], o, rtol=1e-7, atol=1e-7)
        assert rew[i] == pytest.approx(r, rel=1e-7, abs=1e-7) and bool(done[i]) == term
        np.testing.assert_allclose(next_qpos[i], real.unwrapped.data.qpos, atol=1e-7)  # type: ignore[attr-defined]
    if env != "halfcheetah":
        assert done.any() and not done.all()  # both kinds of row were compared


def test_true_rollouts_store_the_simulators_transitions(hopper_random_file: Path) -> None:
    ds = load_hdf5(hopper_random_file)
    assert ds.qpos is not None and ds.qvel is not None
    spec = ds.spec
    sim = Simulator(spec)
    agent = SAC(spec.obs_dim, spec.act_dim, SACConfig(hidden=16), seed=0)
    rows = np.arange(0, 3000, 30)
    buffer = ReplayBuffer(1000, spec.obs_dim, spec.act_dim)
    start = torch.as_tensor(ds.observations[rows], dtype=torch.float32)
    stats = true_rollout(sim, agent, start, ds.qpos[rows], ds.qvel[rows], horizon=4, buffer=buffer)
    assert stats.transitions == len(buffer) and 100 <= len(buffer) <= 400 and stats.nonfinite == 0
    first = slice(0, 100)  # the first step's rows, in start order: check them against the real env
    real = spec.make()
    real.reset(seed=0)
    for j, i in enumerate(rows[:10]):
        set_state(real, ds.qpos[i], ds.qvel[i])
        o, r, *_ = real.step(buffer.act[first][j].double().numpy())
        np.testing.assert_allclose(buffer.next_obs[j].numpy(), o, rtol=1e-5, atol=1e-5)
        assert float(buffer.rew[j]) == pytest.approx(r, rel=1e-5, abs=1e-5)
    np.testing.assert_allclose(buffer.obs[:100].numpy(), ds.observations[rows], atol=1e-6)


def test_true_dynamics_trial_runs_without_a_pool_and_refuses_ensemble_penalties(hopper_random_file: Path,
                                                                               tmp_path: Path) -> None:
    cfg = tiny_config(hopper_random_file, tmp_path / "pools", penalty="none", epochs=2,
                      **{"dynamics.kind": "true", "sac.num_critics": 3, "sac.eta": 1.0})
    trainer = build_trainer(cfg, load_hdf5(hopper_random_file))
    while not trainer.done:
        m = trainer.run_epoch()
    assert trainer.status == FINISHED and m["model_buffer_size"] > 0 and math.isfinite(m["q_mean"])
    assert not (tmp_path / "pools").exists(), "no pool is trained for the simulator"
    for penalty in ("max_aleatoric", "mobile"):
        with pytest.raises(ConfigError, match="needs a learned ensemble"):
            TrialConfig(dataset="x.hdf5").with_overrides({"penalty": penalty, "dynamics.kind": "true"})


def test_mobile_and_ravl_baselines_carry_their_published_settings() -> None:
    mobile = hand_tuned("mobile", "hopper-medium")
    assert (mobile["penalty"], mobile["lam"], mobile["rollout.horizon"]) == ("mobile", 1.5, 5)
    assert (mobile["sac.auto_alpha"], mobile["sac.init_alpha"]) == (False, 0.2)  # that row's own setting
    assert "sac.auto_alpha" not in hand_tuned("mobile", "walker2d-medium")
    ravl = hand_tuned("ravl", "walker2d-random")  # one default row for every dataset
    assert (ravl["penalty"], ravl["sac.num_critics"], ravl["sac.eta"], ravl["rollout.horizon"]) == ("none", 10, 1.0, 5)
    for source in ("mobile", "ravl"):
        for name in ("hopper-medium", "halfcheetah-random"):
            cfg = TrialConfig(dataset="x.hdf5").with_overrides(hand_tuned(source, name))
            assert cfg.sac.num_critics == (10 if source == "ravl" else 2)
    with pytest.raises(ValueError, match="no setting for 'hopper-expert'"):
        hand_tuned("mobile", "hopper-expert")
