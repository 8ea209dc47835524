"""Uncertainty heuristics u(s, a), vectorised over the rollout batch (formulas in docs/design.md).

Every penalty takes the members' predicted means and standard deviations ``[N, B, D]`` over
``[delta_s, r]`` (original units), the sampled output ``[B, D]`` and the index of the member it was
sampled from ``[B]``, and returns ``u`` of shape ``[B]``. Norms are L2 over the D output dimensions.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

Penalty = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def none(mean: torch.Tensor, std: torch.Tensor, sample: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    return mean.new_zeros(mean.shape[1])


def max_aleatoric(mean: torch.Tensor, std: torch.Tensor, sample: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """MOPO: ``max_i ||sigma_i||``."""
    return torch.linalg.vector_norm(std, dim=-1).amax(0)


def max_pairwise_diff(mean: torch.Tensor, std: torch.Tensor, sample: torch.Tensor,
                      k: torch.Tensor) -> torch.Tensor:
    """MOReL: ``max_{i,j} ||mu_i - mu_j||``."""
    diff = mean.unsqueeze(0) - mean.unsqueeze(1)  # [N, N, B, D]
    return torch.linalg.vector_norm(diff, dim=-1).flatten(0, 1).amax(0)


def _mixture_var(mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Per-dimension variance of the equally weighted mixture of the members: ``[B, D]``."""
    m = mean.mean(0)
    return ((std.pow(2) + mean.pow(2)).mean(0) - m.pow(2)).clamp_min(0.0)


def ensemble_std(mean: torch.Tensor, std: torch.Tensor, sample: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """``||sqrt(mean_i(sigma_i^2 + mu_i^2) - mean_i(mu_i)^2)||``: the mixture's std, L2 over dims."""
    return torch.linalg.vector_norm(_mixture_var(mean, std).sqrt(), dim=-1)


def ensemble_var(mean: torch.Tensor, std: torch.Tensor, sample: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """The mixture variance summed over dimensions."""
    return _mixture_var(mean, std).sum(-1)


def ll_var(mean: torch.Tensor, std: torch.Tensor, sample: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """``Var_i log N(y; mu_i, sigma_i)`` for the sampled output y (population variance over members)."""
    z = (sample.unsqueeze(0) - mean) / std
    log_lik = (-0.5 * z.pow(2) - std.log() - 0.5 * math.log(2 * math.pi)).sum(-1)  # [N, B]
    return log_lik.var(0, unbiased=False)


def loo_kl(mean: torch.Tensor, std: torch.Tensor, sample: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """``KL(N(mu_k, sigma_k) || N(mu_-k, sigma_-k))``: the sampled member against the moment-matched
    mixture of the others (diagonal Gaussians, summed over dims)."""
    n = mean.shape[0]
    batch = torch.arange(mean.shape[1], device=mean.device)
    mu_k, sd_k = mean[k, batch], std[k, batch]
    second = std.pow(2) + mean.pow(2)
    mu_rest = (mean.sum(0) - mu_k) / (n - 1)
    var_rest = ((second.sum(0) - (sd_k.pow(2) + mu_k.pow(2))) / (n - 1) - mu_rest.pow(2)).clamp_min(1e-12)
    var_k = sd_k.pow(2)
    kl = 0.5 * (var_rest.log() - var_k.log() + (var_k + (mu_k - mu_rest).pow(2)) / var_rest - 1.0)
    return kl.sum(-1)


#: Penalty name -> function; the config's ``penalty`` field names one of these.
PENALTIES: dict[str, Penalty] = {
    "none": none,
    "max_aleatoric": max_aleatoric,
    "max_pairwise_diff": max_pairwise_diff,
    "ensemble_std": ensemble_std,
    "ensemble_var": ensemble_var,
    "ll_var": ll_var,
    "loo_kl": loo_kl,
}


def get_penalty(name: str) -> Penalty:
    try:
        return PENALTIES[name]
    except KeyError:
        raise ValueError(f"unknown penalty '{name}'; known: {', '.join(PENALTIES)}") from None
