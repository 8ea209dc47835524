"""The ensemble learns a known system: linear dynamics with known Gaussian noise."""

from __future__ import annotations

import torch

from trials.config import DynamicsConfig
from trials.models.dynamics import EnsembleDynamics, fit


def test_ensemble_fits_linear_gaussian_system() -> None:
    torch.manual_seed(0)
    # 20k rows: each member's bootstrap resample holds ~63% of them, and with fewer the mean's own error
    # inflates the learned std of the smallest-noise dimension by ~20%.
    n, obs_dim, act_dim = 20000, 3, 2
    a_mat = torch.tensor([[0.1, -0.2, 0.0], [0.05, 0.0, 0.1], [0.0, 0.3, -0.1]])
    b_mat = torch.tensor([[0.5, 0.0, -0.3], [0.0, 0.2, 0.4]])
    noise = torch.tensor([0.05, 0.1, 0.2, 0.3])  # std of [delta_s, r]
    obs = torch.randn(n, obs_dim)
    act = torch.rand(n, act_dim) * 2 - 1
    delta = obs @ a_mat + act @ b_mat + noise[:3] * torch.randn(n, obs_dim)
    rew = obs[:, 0] - act[:, 1] + noise[3] * torch.randn(n)
    cfg = DynamicsConfig(pool_size=3, hidden=64, layers=2, max_epochs=60, patience=8)
    model = EnsembleDynamics(3, obs_dim, act_dim, cfg.hidden, cfg.layers)
    result = fit(model, obs, act, rew, obs + delta, cfg, seed=0)
    assert result.epochs >= 5

    test_obs = torch.randn(2000, obs_dim)
    test_act = torch.rand(2000, act_dim) * 2 - 1
    mean, std = model.predict(test_obs, test_act)
    true_mean = torch.cat([test_obs @ a_mat + test_act @ b_mat, (test_obs[:, 0] - test_act[:, 1])[:, None]], 1)
    mean_err = (mean - true_mean).abs().mean(dim=(0, 1))  # per output dimension
    assert (mean_err < 0.25 * noise + 0.01).all(), mean_err
    # The predicted aleatoric std recovers the injected noise, dimension by dimension.
    predicted = std.mean(dim=(0, 1))
    assert torch.allclose(predicted, noise, rtol=0.2), predicted
    assert model.holdout_loss.isfinite().all()


def test_subset_keeps_chosen_members() -> None:
    model = EnsembleDynamics(4, 3, 2, 16, 2)
    model.holdout_loss.copy_(torch.tensor([0.4, 0.1, 0.3, 0.2]))
    sub = model.subset([1, 3])
    obs, act = torch.randn(5, 3), torch.randn(5, 2)
    full_mean, full_std = model.predict(obs, act)
    mean, std = sub.predict(obs, act)
    assert torch.allclose(mean, full_mean[[1, 3]], atol=1e-6) and torch.allclose(std, full_std[[1, 3]], atol=1e-6)
    assert torch.allclose(sub.holdout_loss, torch.tensor([0.1, 0.2]))


def test_a_fit_killed_between_epochs_continues_to_the_uninterrupted_result(tmp_path) -> None:
    """The progress file a killed pool training leaves lets the next attempt continue from it; the pool it
    ends with is the one an uninterrupted fit gives, bit for bit."""
    g = torch.Generator().manual_seed(0)
    obs, act = torch.randn(600, 3, generator=g), torch.randn(600, 2, generator=g)
    next_obs, rew = obs + 0.1 * act.sum(-1, keepdim=True), obs[:, 0] - act[:, 1]
    cfg = DynamicsConfig(pool_size=3, hidden=16, layers=2, max_epochs=5, patience=100, batch_size=64)

    def model() -> EnsembleDynamics:
        torch.manual_seed(0)
        return EnsembleDynamics(3, 3, 2, 16, 2)

    straight = model()
    expected = fit(straight, obs, act, rew, next_obs, cfg, seed=1)
    progress = tmp_path / "progress.pt"
    fit(model(), obs, act, rew, next_obs, cfg.model_copy(update={"max_epochs": 3}), seed=1, checkpoint=progress,
        checkpoint_every=2)  # stands for a training killed during its third epoch: progress at epoch 2
    assert torch.load(progress, weights_only=False)["epoch"] == 2
    resumed = model()
    got = fit(resumed, obs, act, rew, next_obs, cfg, seed=1, checkpoint=progress, checkpoint_every=2)
    assert got.epochs == expected.epochs == 5 and got.holdout_mse == expected.holdout_mse
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    progress.write_bytes(b"\x80truncated")  # a progress file cut short by a crash: the fit starts over
    again = fit(model(), obs, act, rew, next_obs, cfg, seed=1, checkpoint=progress)
    assert again.holdout_mse == expected.holdout_mse
