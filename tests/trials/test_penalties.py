"""Each penalty matches a plain numpy computation of its docs/design.md formula on small hand-made inputs."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from trials.rollouts.penalties import PENALTIES, get_penalty

RNG = np.random.default_rng(0)
N, B, D = 4, 5, 3
MEAN = RNG.normal(size=(N, B, D))
STD = RNG.uniform(0.1, 2.0, size=(N, B, D))
K = np.array([0, 3, 1, 2, 3])
SAMPLE = MEAN[K, np.arange(B)] + STD[K, np.arange(B)] * RNG.normal(size=(B, D))


def _gauss_logpdf(x: np.ndarray, mu: np.ndarray, sd: np.ndarray) -> float:
    return float(np.sum(-0.5 * ((x - mu) / sd) ** 2 - np.log(sd) - 0.5 * np.log(2 * np.pi)))


def reference(name: str, b: int) -> float:
    """The formula for one batch row, written out member by member."""
    mu, sd = MEAN[:, b], STD[:, b]
    mix_mean = mu.mean(0)
    mix_var = (sd**2 + mu**2).mean(0) - mix_mean**2
    if name == "none":
        return 0.0
    if name == "max_aleatoric":
        return max(np.linalg.norm(sd[i]) for i in range(N))
    if name == "max_pairwise_diff":
        return max(np.linalg.norm(mu[i] - mu[j]) for i, j in itertools.product(range(N), repeat=2))
    if name == "ensemble_std":
        return float(np.linalg.norm(np.sqrt(mix_var)))
    if name == "ensemble_var":
        return float(mix_var.sum())
    if name == "ll_var":
        return float(np.var([_gauss_logpdf(SAMPLE[b], mu[i], sd[i]) for i in range(N)]))
    if name == "loo_kl":
        k = K[b]
        others = [i for i in range(N) if i != k]
        m2 = mu[others].mean(0)
        v2 = (sd[others] ** 2 + mu[others] ** 2).mean(0) - m2**2
        v1, m1 = sd[k] ** 2, mu[k]
        return float(np.sum(0.5 * (np.log(v2 / v1) + (v1 + (m1 - m2) ** 2) / v2 - 1)))
    raise AssertionError(name)


@pytest.mark.parametrize("name", list(PENALTIES))
def test_penalty_matches_numpy_reference(name: str) -> None:
    t = lambda a: torch.as_tensor(a, dtype=torch.float64)  # noqa: E731
    got = PENALTIES[name](t(MEAN), t(STD), t(SAMPLE), torch.as_tensor(K)).numpy()
    want = np.array([reference(name, b) for b in range(B)])
    assert got.shape == (B,)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_agreeing_members_have_no_epistemic_penalty() -> None:
    mean = torch.ones(3, 2, 4)
    std = torch.full((3, 2, 4), 0.5)
    k = torch.zeros(2, dtype=torch.long)
    assert torch.allclose(PENALTIES["max_pairwise_diff"](mean, std, mean[0], k), torch.zeros(2))
    assert torch.allclose(PENALTIES["loo_kl"](mean, std, mean[0], k), torch.zeros(2), atol=1e-6)
    assert torch.allclose(PENALTIES["ensemble_std"](mean, std, mean[0], k), torch.full((2,), 1.0))


def test_unknown_penalty_lists_known() -> None:
    with pytest.raises(ValueError, match="known: none, max_aleatoric"):
        get_penalty("bogus")
