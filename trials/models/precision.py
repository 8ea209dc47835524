"""The number format of an ensemble's matrix multiplies: the rollout's forward (``rollout.precision``) and
pool training (``dynamics.precision``).

``bfloat16`` means: the matrix multiplies take bfloat16 operands, accumulate in float32 and return
bfloat16, as ``torch.autocast`` does; everything between them (activations, the log-variance bounds,
sampling, penalties) runs on those bfloat16 values exactly as under autocast. Where the device multiplies
bfloat16 natively (AVX512-BF16 or AMX CPUs, GPUs) that is autocast itself. A CPU without those units runs
autocast's bfloat16 matrix multiplies in a scalar fallback, ~17x slower than float32 (2026-12-03, an
AVX2-only EPYC: one 7-member predict of 1,024 rows 762 ms against 45 ms); there :class:`Bfloat16Rounding`
computes the same numbers in float32: it rounds each operand to bfloat16, multiplies in float32 (the
product of two bfloat16 values is exact in float32, and the sum accumulates in float32 as the native
kernels do) and rounds the result to bfloat16. The two agree except where summation order moves a result
across a rounding boundary (0.4% of the outputs, by one bfloat16 step; tests/trials/test_precision.py).
In training only the forward's products are rounded that way (the backward's run in float32).
``MBRL_TUNE_BFLOAT16=emulate`` in the environment takes that path on any CPU (to measure or test it).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from trials.config import Precision

#: Set to ``emulate``: a CPU computes bfloat16 in float32 arithmetic even where it has native bfloat16.
EMULATE_VARIABLE = "MBRL_TUNE_BFLOAT16"
#: The calls that autocast runs in its lower precision on CPU and that an ensemble forward can make.
LOWERED: frozenset[Callable[..., Any]] = frozenset({
    torch.baddbmm, torch.bmm, torch.mm, torch.addmm, torch.matmul, F.linear,
    torch.Tensor.matmul, torch.Tensor.__matmul__,
})


def native_bfloat16(device: torch.device) -> bool:
    """Whether ``device`` multiplies bfloat16 matrices in hardware (a CPU with AVX512-BF16 or AMX; a GPU
    that supports bfloat16)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if os.environ.get(EMULATE_VARIABLE) == "emulate":
        return False
    if device.type != "cpu":
        return True
    return bool(getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()
                or getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)())


def _to_bfloat16_grid(value: Any) -> Any:
    """A floating tensor rounded to the nearest bfloat16 and held as float32; anything else as it is."""
    if isinstance(value, torch.Tensor) and value.is_floating_point():
        return value.to(torch.bfloat16).float()
    return value


class Bfloat16Rounding(TorchFunctionMode):
    """Autocast's bfloat16 matrix multiplies computed in float32 on bfloat16-rounded operands, with the
    result rounded to (and returned as) bfloat16."""

    def __torch_function__(self, func: Callable[..., Any], types: Any, args: tuple[Any, ...] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        if func not in LOWERED:
            return func(*args, **kwargs)
        out = func(*map(_to_bfloat16_grid, args), **{k: _to_bfloat16_grid(v) for k, v in kwargs.items()})
        return out.to(torch.bfloat16)


def precision_context(precision: Precision, device: torch.device) -> AbstractContextManager[Any]:
    """The context to run the ensemble's forward in for ``precision`` on ``device``."""
    if precision == "float32":
        return nullcontext()
    if native_bfloat16(device):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return Bfloat16Rounding()
