"""The trial loop on a small real hopper dataset: metrics, resume equality, divergence, the shared pool."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from ray import tune

from trials.config import TrialConfig
from trials.data.dataset import load_hdf5
from trials.models.pool import pool_key
from trials.rollouts.penalties import PENALTIES
from trials.rollouts.replay import ReplayBuffer
from trials.rollouts.rollout import rollout
from trials.run.build import build_trainer
from trials.run.mopo import DIVERGED, FINISHED
from trials.run.trainable import CHECKPOINT_FILE, read_checkpoint


def tiny_config(dataset: Path, pool_dir: Path, **overrides: object) -> TrialConfig:
    base = TrialConfig(
        dataset=str(dataset), pool_dir=str(pool_dir), penalty="ensemble_std", lam=1.0, num_models=3,
        num_elites=2, real_ratio=0.5, epochs=3, steps_per_epoch=40, eval_every=1, eval_episodes=1,
        rollout={"batch_size": 200, "horizon": 3, "freq": 20, "retain_epochs": 2},
        dynamics={"pool_size": 4, "hidden": 32, "layers": 2, "max_epochs": 3},
        sac={"hidden": 32, "batch_size": 64},
    )
    return base.with_overrides(dict(overrides))


def test_epoch_metrics_are_complete_and_finite(hopper_random_file: Path, tmp_path: Path) -> None:
    cfg = tiny_config(hopper_random_file, tmp_path)
    trainer = build_trainer(cfg, load_hdf5(hopper_random_file))
    while not trainer.done:
        m = trainer.run_epoch()
    assert trainer.status == FINISHED and m["epoch"] == 3
    for key in ("normalized_score", "return_mean", "penalty_mean", "penalty_max", "model_holdout_mse",
                "q_mean", "rollout_terminated_fraction", "updates_per_sec", "time_sac", "time_rollout"):
        assert math.isfinite(m[key]), key
    assert m["penalty_max"] >= m["penalty_mean"] > 0
    # 2 rounds/epoch x 200 starts x up to 3 steps, kept for 2 epochs.
    assert 0 < m["model_buffer_size"] <= 2 * 2 * 200 * 3


def test_resume_from_state_gives_identical_results(hopper_random_file: Path, tmp_path: Path) -> None:
    cfg = tiny_config(hopper_random_file, tmp_path)
    ds = load_hdf5(hopper_random_file)
    straight = build_trainer(cfg, ds)
    while not straight.done:
        straight.run_epoch()

    first = build_trainer(cfg, ds)
    first.run_epoch()
    saved = tmp_path / "checkpoint"
    saved.mkdir()
    torch.save({cfg.seed: first.state_dict()}, saved / CHECKPOINT_FILE)  # as the Tune trainable saves it
    torch.manual_seed(12345)  # whatever happened in between must not matter
    resumed = build_trainer(cfg, ds)
    states = read_checkpoint(tune.Checkpoint.from_directory(str(saved)))
    assert states is not None
    # Read onto the CPU whatever the trial's device: a load mapped to CUDA moved the generator states there,
    # and torch restores generators only from CPU byte tensors (every CUDA trial failed to resume).
    for key in ("gen", "agent_gen", "torch_rng"):
        assert states[cfg.seed][key].device.type == "cpu" and states[cfg.seed][key].dtype == torch.uint8
    resumed.load_state_dict(states[cfg.seed])
    while not resumed.done:
        resumed.run_epoch()

    drop = ("updates_per_sec", "time_sac", "time_rollout", "time_eval", "time_pool")
    clean = lambda h: [{k: v for k, v in row.items() if k not in drop} for row in h]  # noqa: E731
    assert clean(resumed.history) == clean(straight.history)


def test_an_ended_trial_keeps_no_model_buffer_in_its_state(hopper_random_file: Path, tmp_path: Path) -> None:
    cfg = tiny_config(hopper_random_file, tmp_path)
    ds = load_hdf5(hopper_random_file)
    trainer = build_trainer(cfg, ds)
    trainer.run_epoch()
    assert trainer.state_dict()["model_buffer"]["size"] == trainer.model_buffer.size > 0  # running: kept
    while not trainer.done:
        trainer.run_epoch()
    state = trainer.state_dict()
    assert state["model_buffer"]["size"] == 0 and state["model_buffer"]["obs"].numel() == 0
    loaded = build_trainer(cfg, ds)  # what a restore of the finished trial does: done, same record
    loaded.load_state_dict(state)
    assert loaded.done and loaded.status == FINISHED and loaded.history == trainer.history
    for a, b in zip(loaded.agent.actor.parameters(), trainer.agent.actor.parameters(), strict=True):
        assert torch.equal(a, b)


def test_forced_divergence_ends_as_diverged(hopper_random_file: Path, tmp_path: Path) -> None:
    # An absurd critic learning rate makes Adam's steps ~1e30: the Q-values overflow for real.
    cfg = tiny_config(hopper_random_file, tmp_path, **{"sac.critic_lr": 1e30, "sac.actor_lr": 1e30, "epochs": 5})
    trainer = build_trainer(cfg, load_hdf5(hopper_random_file))
    while not trainer.done:
        m = trainer.run_epoch()
    assert trainer.status == DIVERGED and m["status"] == DIVERGED
    assert trainer.epoch < 5
    assert math.isfinite(m["score"])


POOL_SCRIPT = """
import sys
from pathlib import Path
from trials.config import TrialConfig
from trials.data.dataset import load_hdf5
from trials.models.pool import load_or_train_pool
cfg = TrialConfig.load(sys.argv[1])
_, info = load_or_train_pool(load_hdf5(cfg.dataset), cfg.seed, cfg.dynamics, Path(cfg.pool_dir))
print("trained" if info.trained_here else "loaded")
"""


def test_concurrent_processes_train_the_pool_once(hopper_random_file: Path, tmp_path: Path) -> None:
    cfg = tiny_config(hopper_random_file, tmp_path / "pools", **{"dynamics.max_epochs": 6})
    cfg_path = cfg.save(tmp_path / "cfg.yaml")
    procs = [subprocess.Popen([sys.executable, "-c", POOL_SCRIPT, str(cfg_path)], stdout=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outputs = sorted(p.communicate(timeout=300)[0].strip() for p in procs)
    assert outputs == ["loaded", "trained"]
    log = (tmp_path / "pools" / "trainings.log").read_text().splitlines()
    assert len(log) == 1
    assert log[0].startswith(pool_key(load_hdf5(hopper_random_file).content_hash(), 0, cfg.dynamics))


def test_pool_key_changes_with_architecture_and_seed() -> None:
    a = TrialConfig(dataset="x").dynamics
    b = a.model_copy(update={"hidden": 100})
    assert len({pool_key("h", 0, a), pool_key("h", 1, a), pool_key("h", 0, b)}) == 3


def test_members_are_chosen_by_holdout_rank(hopper_random_file: Path, tmp_path: Path) -> None:
    cfg = tiny_config(hopper_random_file, tmp_path)
    trainer = build_trainer(cfg, load_hdf5(hopper_random_file))
    pool_losses = sorted(trainer.pool_info.holdout_mse)
    assert trainer.model.holdout_loss.tolist() == pytest.approx(pool_losses[:3])
    assert trainer.elites.tolist() == [0, 1]


def test_bfloat16_rollout_tracks_float32(hopper_random_file: Path, tmp_path: Path) -> None:
    cfg = tiny_config(hopper_random_file, tmp_path)
    trainer = build_trainer(cfg, load_hdf5(hopper_random_file))
    start = trainer.real.obs[:500]
    out: dict[str, ReplayBuffer] = {}
    actor_rng = trainer.agent.gen.get_state()
    for precision in ("float32", "bfloat16"):
        trainer.agent.gen.set_state(actor_rng)
        buffer = ReplayBuffer(500 * 3, trainer.spec.obs_dim, trainer.spec.act_dim)
        rollout(trainer.model, trainer.elites, trainer.agent, start, 1, trainer.spec.terminated,
                PENALTIES["ensemble_std"], 1.0, buffer, torch.Generator().manual_seed(0), precision=precision)
        out[precision] = buffer
    full, half = out["float32"], out["bfloat16"]
    assert len(full) == len(half) == 500  # one step from every start: no row is dropped
    assert half.next_obs.dtype == half.rew.dtype == torch.float32
    # Same seed, same actions and elite choices; only the ensemble's arithmetic differs.
    assert torch.equal(full.act[:500], half.act[:500])
    delta = full.next_obs[:500] - full.obs[:500]
    diff = half.next_obs[:500] - full.next_obs[:500]
    assert 0 < diff.abs().max()  # the low-precision path really ran
    assert float(diff.pow(2).mean().sqrt()) < 0.01 * float(delta.std())
    reward_diff = (half.rew[:500] - full.rew[:500]).abs().max()
    assert float(reward_diff) < 0.01 * float(full.rew[:500].std())


def test_trial_runs_with_bfloat16_rollouts(hopper_random_file: Path, tmp_path: Path) -> None:
    cfg = tiny_config(hopper_random_file, tmp_path, **{"rollout.precision": "bfloat16", "epochs": 2})
    trainer = build_trainer(cfg, load_hdf5(hopper_random_file))
    while not trainer.done:
        metrics = trainer.run_epoch()
    assert trainer.status == FINISHED
    assert math.isfinite(metrics["normalized_score"]) and metrics["model_buffer_size"] > 0


def test_score_averages_the_last_evaluations(hopper_random_file: Path, tmp_path: Path) -> None:
    ds = load_hdf5(hopper_random_file)
    latest = build_trainer(tiny_config(hopper_random_file, tmp_path), ds)
    window = build_trainer(tiny_config(hopper_random_file, tmp_path, score_window=2), ds)
    for trainer in (latest, window):
        while not trainer.done:
            trainer.run_epoch()
    evals = [h["normalized_score"] for h in latest.history if h["evaluated"]]
    assert len(evals) == 3 and len(set(evals)) > 1  # the evaluations differ, so the window matters
    assert [h["normalized_score"] for h in window.history] == evals  # same training, same evaluations
    assert [h["score"] for h in latest.history] == evals
    assert [h["score"] for h in window.history] == pytest.approx([evals[0], *(
        (a + b) / 2 for a, b in zip(evals[:-1], evals[1:], strict=True))])


def test_rollout_ends_rows_whose_prediction_is_not_finite(hopper_random_file: Path, tmp_path: Path) -> None:
    cfg = tiny_config(hopper_random_file, tmp_path, penalty="max_aleatoric")
    trainer = build_trainer(cfg, load_hdf5(hopper_random_file))
    model = trainer.model
    with torch.no_grad():  # one hidden unit drives the reward to inf wherever it is active: a real overflow
        model.head.weight[:, 0, model.obs_dim] = 3e38
        model.head.weight[:, 0, 2 * model.out_dim - 1] = 0.0
    start = trainer.real.obs[:400]
    buffer = ReplayBuffer(400 * 3, trainer.spec.obs_dim, trainer.spec.act_dim)
    stats = rollout(model, trainer.elites, trainer.agent, start, 3, trainer.spec.terminated,
                    PENALTIES["max_aleatoric"], 1.0, buffer, torch.Generator().manual_seed(0))
    assert 0 < stats.nonfinite < 400
    assert stats.transitions == len(buffer) > 0
    n = len(buffer)
    for field in (buffer.obs, buffer.next_obs, buffer.rew):
        assert torch.isfinite(field[:n]).all()
    # The old guard stored inf as float32's largest value (nan_to_num); nothing at that value is stored now.
    limit = torch.finfo(torch.float32).max
    assert (buffer.rew[:n].abs() < limit).all() and (buffer.next_obs[:n].abs() < limit).all()
