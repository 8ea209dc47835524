"""Where the engine follows its references (MOPO's official code, OfflineRL-Kit): bootstrap resamples per
member, targets in the data's own units, rollouts that end rows whose prediction is not finite, and
baselines that carry their source's SAC settings (the rollout's non-finite guard is tested in
test_mopo.py, beside the trial loop's fixtures)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from trials.agent.sac import SAC, SACConfig
from trials.config import DynamicsConfig, TrialConfig
from trials.data.baselines import agent_settings, hand_tuned
from trials.data.dataset import load_hdf5
from trials.models.dynamics import EnsembleDynamics, fit, member_rows
from trials.models.pool import load_or_train_pool, pool_key


def test_each_member_trains_on_its_own_bootstrap_resample() -> None:
    gen = torch.Generator().manual_seed(0)
    rows = member_rows(5, 10_000, bootstrap=True, gen=gen)
    unique = [len(set(r.tolist())) / 10_000 for r in rows]
    assert all(abs(u - (1 - 1 / math.e)) < 0.02 for u in unique), unique  # ~63% distinct rows each
    assert len({tuple(r[:50].tolist()) for r in rows}) == 5  # and each member its own draw
    plain = member_rows(5, 100, bootstrap=False, gen=gen)
    assert all(sorted(r.tolist()) == list(range(100)) for r in plain)


def test_bootstrap_is_the_default_and_part_of_the_pool_key() -> None:
    cfg = DynamicsConfig()
    assert cfg.bootstrap and not cfg.normalize_targets
    assert pool_key("h", 0, cfg) != pool_key("h", 0, cfg.model_copy(update={"bootstrap": False}))
    assert pool_key("h", 0, cfg) != pool_key("h", 0, cfg.model_copy(update={"normalize_targets": True}))


def test_bootstrap_makes_members_disagree_more_on_held_out_data(hopper_random_file: Path, tmp_path: Path) -> None:
    ds = load_hdf5(hopper_random_file)
    spread = {}
    for bootstrap in (False, True):
        cfg = DynamicsConfig(pool_size=5, hidden=32, layers=2, max_epochs=15, bootstrap=bootstrap)
        _, info = load_or_train_pool(ds, 0, cfg, tmp_path)
        spread[bootstrap] = info.fit["disagreement"]
        assert len(info.fit["holdout_mse_raw"]) == len(info.fit["holdout_mse_std"]) == 5
    assert spread[True] > spread[False] > 0, spread


def test_targets_stay_in_the_data_units_unless_normalised() -> None:
    torch.manual_seed(0)
    obs, act = torch.randn(3000, 2), torch.rand(3000, 1) * 2 - 1
    delta = torch.stack([0.01 * obs[:, 0], 5.0 * act[:, 0]], dim=1) + 0.01 * torch.randn(3000, 2)
    rew = obs[:, 1] + 0.01 * torch.randn(3000)
    means = {}
    for normalize in (False, True):
        cfg = DynamicsConfig(pool_size=2, hidden=32, layers=2, max_epochs=30, normalize_targets=normalize)
        model = EnsembleDynamics(2, 2, 1, 32, 2)
        result = fit(model, obs, act, rew, obs + delta, cfg, seed=0)
        if normalize:
            assert not torch.allclose(model.out_std, torch.ones(3))
        else:
            assert torch.equal(model.out_mean, torch.zeros(3)) and torch.equal(model.out_std, torch.ones(3))
            # Raw targets: the MSE that ranks members is the one in the data's own units.
            assert result.holdout_mse == pytest.approx(result.holdout_mse_raw, rel=1e-4)
        means[normalize] = model.predict(obs[:200], act[:200])[0].mean(0)
    truth = torch.cat([delta[:200], rew[:200, None]], 1)
    for mean in means.values():  # predictions come back in the data's units either way
        assert (mean - truth).abs().mean() < 0.1


def test_baselines_carry_their_sources_sac_settings() -> None:
    mopo = hand_tuned("mopo_official", "halfcheetah-medium")
    assert mopo["sac.target_entropy"] == -3.0 and mopo["sac.actor_lr"] == 3e-4
    assert (mopo["lam"], mopo["rollout.horizon"], mopo["num_models"]) == (1.0, 1, 7)
    kit = hand_tuned("offlinerl_kit", "hopper-medium")
    assert kit["sac.target_entropy"] is None and kit["sac.actor_lr_schedule"] == "cosine"
    assert (kit["sac.actor_lr"], kit["sac.alpha_lr"], kit["sac.critic_lr"]) == (1e-4, 1e-4, 3e-4)
    assert set(agent_settings("mopo_official")) == {k for k in mopo if k.startswith("sac.")}
    cfg = TrialConfig(dataset="x").with_overrides(mopo)
    assert cfg.sac.target_entropy == -3.0
    with pytest.raises(ValueError, match="unknown baseline source 'nope'; known: mopo_official"):
        hand_tuned("nope", "hopper-medium")


def test_cosine_actor_learning_rate_decays_per_epoch() -> None:
    agent = SAC(3, 2, SACConfig(actor_lr=1e-4, actor_lr_schedule="cosine"))
    lrs = []
    for epoch in range(4):
        agent.set_actor_lr_for_epoch(epoch, 4)
        lrs.append(agent.actor_opt.param_groups[0]["lr"])
    expected = [0.5e-4 * (1 + math.cos(math.pi * e / 4)) for e in range(4)]  # CosineAnnealingLR(T_max=4)
    assert lrs == pytest.approx(expected) and lrs[0] == 1e-4 and lrs[2] == pytest.approx(0.5e-4)
    constant = SAC(3, 2, SACConfig(actor_lr=1e-4))
    constant.set_actor_lr_for_epoch(3, 4)
    assert constant.actor_opt.param_groups[0]["lr"] == 1e-4
