"""Ensemble layers compute, for every member at once, what a separate linear layer per member would."""

from __future__ import annotations

import pytest
import torch

from trials.models.nets import EnsembleLinear, EnsembleMLP


@pytest.mark.parametrize("out_features", [1, 3])  # 1: the multiply-and-sum path of the Q heads
def test_ensemble_linear_matches_a_layer_per_member(out_features: int) -> None:
    torch.manual_seed(0)
    layer = EnsembleLinear(4, 16, out_features)
    x = torch.randn(4, 32, 16, requires_grad=True)
    y = layer(x)
    assert y.shape == (4, 32, out_features)
    upstream = torch.randn_like(y)
    (y * upstream).sum().backward()

    x_ref = x.detach().clone().requires_grad_(True)
    w_ref = layer.weight.detach().clone().requires_grad_(True)
    b_ref = layer.bias.detach().clone().requires_grad_(True)
    y_ref = torch.stack([x_ref[m] @ w_ref[m] + b_ref[m] for m in range(4)])
    (y_ref * upstream).sum().backward()

    torch.testing.assert_close(y, y_ref)
    torch.testing.assert_close(x.grad, x_ref.grad)
    torch.testing.assert_close(layer.weight.grad, w_ref.grad)
    torch.testing.assert_close(layer.bias.grad, b_ref.grad)


def test_ensemble_mlp_broadcasts_a_shared_input() -> None:
    torch.manual_seed(0)
    net = EnsembleMLP(2, 5, 1, 8, 2)
    x = torch.randn(7, 5)
    torch.testing.assert_close(net(x), net(x.unsqueeze(0).expand(2, -1, -1)))
    assert net(x).shape == (2, 7, 1)
