"""Probabilistic dynamics ensemble (PETS/MBPO/MOPO): each member predicts a diagonal Gaussian over
``[delta_s, r]`` given ``(s, a)``. All members are computed at once (weights ``[members, in, out]``).

- Inputs are standardised with the training data's statistics; targets too only with
  ``DynamicsConfig.normalize_targets`` (off by default, as in MOPO and OfflineRL-Kit). Predictions are
  returned in original units either way.
- Log-variances are soft-bounded by learned ``max_logvar``/``min_logvar`` (Chua et al. 2018).
- Training runs its matrix multiplies in ``DynamicsConfig.precision`` (bfloat16 under autocast where
  asked; the loss, the optimiser and the holdout errors always in float32).
- Training: a holdout set (``holdout_ratio``, at most ``max_holdout`` rows) is split off first; each
  member then trains on its own bootstrap resample of the remaining rows (``bootstrap``; reshuffled every
  epoch), by Gaussian NLL with L2 weight decay per layer. Training stops when no member improved its
  holdout MSE (in the training targets' units) by more than 1% for ``patience`` epochs, keeping each
  member's best weights; that MSE ranks members for elites.
- Reported per pool: holdout MSE in the data's own units (comparable across tools) and in units of
  each target dimension's standard deviation, and the members' disagreement on held-out inputs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from trials.config import DynamicsConfig
from trials.files import TORCH_READ_ERRORS, atomic_write
from trials.models.nets import EnsembleLinear
from trials.models.precision import precision_context


def bound_logvar(logvar: torch.Tensor, max_logvar: torch.Tensor, min_logvar: torch.Tensor) -> torch.Tensor:
    """Soft-bound log-variances between the learned limits (Chua et al. 2018)."""
    logvar = max_logvar - F.softplus(max_logvar - logvar)
    return min_logvar + F.softplus(logvar - min_logvar)


class EnsembleDynamics(nn.Module):
    """``members`` Gaussian MLPs over ``[delta_s, r]``."""

    def __init__(self, members: int, obs_dim: int, act_dim: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.members, self.obs_dim, self.act_dim = members, obs_dim, act_dim
        self.out_dim = obs_dim + 1
        dims = [obs_dim + act_dim] + [hidden] * layers
        self.layers = nn.ModuleList(EnsembleLinear(members, a, b) for a, b in zip(dims[:-1], dims[1:], strict=False))
        self.head = EnsembleLinear(members, hidden, 2 * self.out_dim)
        self.max_logvar = nn.Parameter(torch.full((1, 1, self.out_dim), 0.5))
        self.min_logvar = nn.Parameter(torch.full((1, 1, self.out_dim), -10.0))
        in_dim = obs_dim + act_dim
        self.register_buffer("in_mean", torch.zeros(in_dim))
        self.register_buffer("in_std", torch.ones(in_dim))
        self.register_buffer("out_mean", torch.zeros(self.out_dim))
        self.register_buffer("out_std", torch.ones(self.out_dim))
        self.register_buffer("holdout_loss", torch.full((members,), float("inf")))

    def set_normalizer(self, inputs: torch.Tensor, targets: torch.Tensor, normalize_targets: bool) -> None:
        """Input statistics always; target statistics only when ``normalize_targets`` (else 0 and 1)."""
        self.in_mean.copy_(inputs.mean(0))
        self.in_std.copy_(inputs.std(0).clamp_min(1e-6))
        if normalize_targets:
            self.out_mean.copy_(targets.mean(0))
            self.out_std.copy_(targets.std(0).clamp_min(1e-6))
        else:
            self.out_mean.zero_()
            self.out_std.fill_(1.0)

    def forward_normalized(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised inputs ``[M, B, in]`` (or ``[B, in]``) -> normalised mean and log-variance
        ``[M, B, out]``."""
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(self.members, -1, -1)
        for layer in self.layers:
            x = F.silu(layer(x))
        mean, logvar = self.head(x).chunk(2, dim=-1)
        return mean, bound_logvar(logvar, self.max_logvar, self.min_logvar)

    @torch.no_grad()
    def predict(self, obs: torch.Tensor, act: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and std of ``[delta_s, r]`` in original units for every member: ``[M, B, obs_dim + 1]``."""
        x = (torch.cat([obs, act], dim=-1) - self.in_mean) / self.in_std
        mean, logvar = self.forward_normalized(x)
        return mean * self.out_std + self.out_mean, (0.5 * logvar).exp() * self.out_std

    def subset(self, idx: list[int]) -> EnsembleDynamics:
        """A new ensemble made of members ``idx`` (copies of their weights and holdout losses)."""
        layers = len(self.layers)
        hidden = self.layers[0].out_features
        sub = EnsembleDynamics(len(idx), self.obs_dim, self.act_dim, hidden, layers)
        index = torch.as_tensor(idx, device=self.in_mean.device)
        state = {}
        for name, value in self.state_dict().items():
            member_wise = name.startswith(("layers.", "head.")) or name == "holdout_loss"
            state[name] = value.index_select(0, index) if member_wise else value
        sub.load_state_dict(state)
        return sub.to(self.in_mean.device)


@dataclass
class FitResult:
    epochs: int
    holdout_mse: list[float]
    """Per-member best holdout MSE in the training targets' units (what ranks members)."""
    train_nll: float
    holdout_mse_raw: list[float]
    """Per-member holdout MSE of the kept weights in the data's own units (comparable across tools)."""
    holdout_mse_std: list[float]
    """The same in units of each target dimension's standard deviation (mean over dimensions)."""
    disagreement: float
    """Members' disagreement on held-out inputs: the L2 norm over target dimensions of the std across
    members of their predicted means, each dimension in units of its std, averaged over held-out rows."""
    seconds: float = 0.0
    """Wall-clock of the training. A fit continued from saved progress adds the seconds its earlier runs
    had spent up to that progress (epochs run after it and lost to the kill are not counted)."""


def _decay_loss(model: EnsembleDynamics, decays: tuple[float, ...]) -> torch.Tensor:
    mods = [*model.layers, model.head]
    total = torch.zeros((), device=model.in_mean.device)
    for i, layer in enumerate(mods):
        total = total + decays[min(i, len(decays) - 1)] * 0.5 * layer.weight.pow(2).sum()
    return total


def member_rows(members: int, n_train: int, bootstrap: bool, gen: torch.Generator) -> torch.Tensor:
    """Each member's training rows ``[members, n_train]``: a bootstrap resample (with replacement, drawn
    once per fit), or every row."""
    if bootstrap:
        return torch.randint(0, n_train, (members, n_train), generator=gen, device=gen.device)
    return torch.arange(n_train, device=gen.device).expand(members, -1)


def _save_progress(path: Path, state: dict[str, Any]) -> None:
    atomic_write(path, partial(torch.save, state))


def _read_progress(path: Path | None, quiet: bool = False) -> dict[str, Any] | None:
    """A fit's saved progress, or None: absent, damaged (cut short by a crash or a full disk) or made for
    another file (each progress file records the name it was saved under); the fit then starts over, and
    says so unless ``quiet``."""
    if path is None or not path.is_file():
        return None
    try:
        saved = torch.load(path, map_location="cpu", weights_only=False)  # moved to the fit's device there
    except TORCH_READ_ERRORS as exc:
        why = f"unreadable ({type(exc).__name__})"
    else:
        if isinstance(saved, dict) and saved.get("file", path.name) == path.name and "epoch" in saved:
            return saved
        why = f"made for {saved.get('file')!r}" if isinstance(saved, dict) else "not a training's progress"
    if not quiet:
        print(f"pool training progress {path}: {why}; the training starts over", flush=True)
    return None


def saved_fit_epoch(path: Path) -> int | None:
    """The epoch a killed or running pool training saved its progress at (``pools/.<key>.progress.pt``),
    or None when there is no readable progress file."""
    saved = _read_progress(path, quiet=True)
    return int(saved["epoch"]) if saved is not None else None


def fit(model: EnsembleDynamics, obs: torch.Tensor, act: torch.Tensor, rew: torch.Tensor,
        next_obs: torch.Tensor, cfg: DynamicsConfig, seed: int, progress: bool = False,
        checkpoint: Path | None = None, checkpoint_every: int = 5) -> FitResult:
    """Train every member on ``(s, a) -> [s' - s, r]``; see module docstring for the procedure.

    With ``checkpoint``, the fit's whole state (weights, optimiser, best members so far, patience count,
    generator) is saved there every ``checkpoint_every`` epochs, and a fit that finds one continues from it
    to the same result as an uninterrupted fit (to early stopping, a big pool can take an hour)."""
    gen = torch.Generator(device=obs.device).manual_seed(seed)
    inputs = torch.cat([obs, act], dim=-1)
    targets = torch.cat([next_obs - obs, rew.unsqueeze(-1)], dim=-1)
    n = inputs.shape[0]
    n_hold = min(int(n * cfg.holdout_ratio), cfg.max_holdout)
    perm = torch.randperm(n, generator=gen, device=obs.device)
    hold_idx, train_idx = perm[:n_hold], perm[n_hold:]
    model.set_normalizer(inputs[train_idx], targets[train_idx], cfg.normalize_targets)
    x_all = (inputs - model.in_mean) / model.in_std
    y_all = (targets - model.out_mean) / model.out_std
    x_hold, y_hold = x_all[hold_idx], y_all[hold_idx]
    x_train, y_train = x_all[train_idx], y_all[train_idx]
    n_train = x_train.shape[0]
    members = model.members
    rows = member_rows(members, n_train, cfg.bootstrap, gen)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, fused=True)
    best = torch.full((members,), float("inf"), device=obs.device)
    best_state = {k: v.clone() for k, v in model.state_dict().items()}
    epochs_since, epoch, nll_value, earlier_seconds = 0, 0, float("nan"), 0.0
    started = time.perf_counter()
    saved = _read_progress(checkpoint)
    if saved is not None:  # everything above is a deterministic function of the seed; the rest was saved
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["opt"])
        best = saved["best"].to(best.device)
        best_state = {k: v.to(obs.device) for k, v in saved["best_state"].items()}
        epochs_since, epoch, nll_value = saved["epochs_since"], saved["epoch"], saved["nll_value"]
        earlier_seconds = float(saved.get("seconds", 0.0))  # progress saved before 2026-12-06 has none
        gen.set_state(saved["gen"].cpu())
    while True:
        epoch += 1
        order = rows.gather(1, torch.argsort(torch.rand(members, n_train, generator=gen, device=obs.device), dim=1))
        nll_sum = torch.zeros((), device=obs.device)
        steps = 0
        for start in range(0, n_train, cfg.batch_size):
            idx = order[:, start:start + cfg.batch_size]  # [M, b]: each member its own rows and order
            with precision_context(cfg.precision, obs.device):  # the products; the loss below in float32
                mean, logvar = model.forward_normalized(x_train[idx])
            mean, logvar = mean.float(), logvar.float()
            target = y_train[idx]
            nll = (((mean - target) ** 2) * torch.exp(-logvar) + logvar).mean(dim=(1, 2)).sum()
            loss = nll + 0.01 * (model.max_logvar.sum() - model.min_logvar.sum()) + _decay_loss(
                model, cfg.weight_decay)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            nll_sum += nll.detach()
            steps += 1
        nll_value = float(nll_sum) / max(steps, 1) / members
        with torch.no_grad():
            mean, _ = model.forward_normalized(x_hold)
            mse = ((mean - y_hold) ** 2).mean(dim=(1, 2))
        improved = torch.isinf(best) | ((best - mse) / best.abs().clamp_min(1e-12) > 0.01)
        if bool(improved.any()):
            state = model.state_dict()
            for name, value in state.items():
                if name.startswith(("layers.", "head.")):
                    best_state[name][improved] = value[improved]
                elif not torch.equal(best_state[name], value):
                    best_state[name] = value.clone()
            best = torch.where(improved, mse, best)
            epochs_since = 0
        else:
            epochs_since += 1
        if progress:
            print(f"  dynamics epoch {epoch}: train nll {nll_value:.3f}, holdout mse "
                  f"{np.round(mse.cpu().numpy(), 4).tolist()}", flush=True)
        if epochs_since >= cfg.patience or (cfg.max_epochs is not None and epoch >= cfg.max_epochs):
            break
        if checkpoint is not None and epoch % checkpoint_every == 0:
            _save_progress(checkpoint, {"model": model.state_dict(), "opt": opt.state_dict(), "best": best,
                                        "best_state": best_state, "epochs_since": epochs_since, "epoch": epoch,
                                        "nll_value": nll_value, "gen": gen.get_state(), "file": checkpoint.name,
                                        "seconds": earlier_seconds + time.perf_counter() - started})
    model.load_state_dict(best_state)
    model.holdout_loss.copy_(best)
    raw, in_std, disagreement = holdout_errors(model, inputs[hold_idx], targets[hold_idx],
                                               targets[train_idx].std(0).clamp_min(1e-6))
    return FitResult(epoch, best.tolist(), nll_value, raw.tolist(), in_std.tolist(), disagreement,
                     earlier_seconds + time.perf_counter() - started)


@torch.no_grad()
def holdout_errors(model: EnsembleDynamics, inputs: torch.Tensor, targets: torch.Tensor,
                   target_std: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Per-member MSE in the data's units and in target-std units, and the members' disagreement (see
    :class:`FitResult`), of raw ``inputs`` -> ``targets`` rows."""
    obs_dim = model.obs_dim
    mean, _ = model.predict(inputs[:, :obs_dim], inputs[:, obs_dim:])  # [M, B, D], original units
    err = (mean - targets) ** 2
    raw = err.mean(dim=(1, 2))
    in_std = (err / target_std.pow(2)).mean(dim=(1, 2))
    spread = (mean.std(0, unbiased=False) / target_std).norm(dim=-1).mean() if model.members > 1 else mean.new_zeros(())
    return raw, in_std, float(spread)
