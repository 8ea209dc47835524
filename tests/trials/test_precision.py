"""bfloat16 rollouts: the float32-arithmetic rounding gives autocast's numbers, and each device gets the
right one."""

from __future__ import annotations

import torch

from trials.models.dynamics import EnsembleDynamics
from trials.models.precision import Bfloat16Rounding, native_bfloat16, precision_context


def _ensemble() -> tuple[EnsembleDynamics, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = EnsembleDynamics(members=7, obs_dim=17, act_dim=6, hidden=200, layers=4)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.1)
    return model, torch.randn(512, 17), torch.randn(512, 6)


@torch.no_grad()
def test_rounding_in_float32_gives_autocasts_bfloat16_numbers() -> None:
    model, obs, act = _ensemble()
    exact = model.predict(obs, act)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        autocast = model.predict(obs, act)
    with Bfloat16Rounding():
        rounded = model.predict(obs, act)
    for ref, ours, full in zip(autocast, rounded, exact, strict=True):
        assert ours.dtype == ref.dtype == torch.float32
        # Summation order may move a result across a rounding boundary; then they differ by one
        # bfloat16 step (2^-8 relative) in that layer, which the rest of the forward carries on.
        assert float((ours != ref).float().mean()) < 0.02
        assert torch.allclose(ours, ref, rtol=2 ** -6, atol=2 ** -6 * float(ref.abs().max()))
        # It is bfloat16, not float32 under another name: most outputs differ from float32.
        assert float((ours != full).float().mean()) > 0.5
        assert float((ours - ref).abs().max()) < float((ours - full).abs().max())


def test_each_device_gets_native_bfloat16_or_the_rounding() -> None:
    cpu = torch.device("cpu")
    bf16 = precision_context("bfloat16", cpu)
    assert isinstance(bf16, torch.autocast) == native_bfloat16(cpu)
    assert isinstance(bf16, Bfloat16Rounding) == (not native_bfloat16(cpu))
    model, obs, act = _ensemble()
    with torch.no_grad(), precision_context("float32", cpu):
        inside = model.predict(obs, act)[0]
    with torch.no_grad():
        assert torch.equal(inside, model.predict(obs, act)[0])  # float32: no context at all
