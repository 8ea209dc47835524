"""What machine ran a trial, in the words that decide whether its numbers repeat elsewhere.

Runs are bit-for-bit reproducible on one kind of CPU with the same code, library versions and thread count,
and not across kinds: the matrix kernels torch picks differ with the instruction sets (an AVX2-only host's
bfloat16 path differs from an AVX512-BF16 one from the first epoch). Every trial report therefore names
them (:func:`machine`); they are not compared when a report is checked against another
(``tuner.store.records.NOT_REPLAYED``), they explain a difference.
"""

from __future__ import annotations

import functools
import platform
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

#: CPU flags that change which kernels (and so which rounding) torch uses, in the order they are printed
#: (x86, then ARM's).
ARITHMETIC_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16", "asimd", "sve", "bf16")
#: Report fields naming the machine (:func:`machine`).
MACHINE_FIELDS = ("cpu", "torch_cpu_capability", "torch_version", "torch_threads", "gpu")


@functools.cache
def cpu_kind(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """``AMD EPYC (avx2 fma avx512f avx512_bf16)``: the CPU model and those of :data:`ARITHMETIC_FLAGS` it
    has; the platform's processor name where ``/proc/cpuinfo`` is not there."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return platform.processor() or platform.machine() or "unknown"
    model, flags = "", set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not model:
            model = value.strip()
        elif key in ("flags", "Features") and not flags:  # x86; ARM names them Features
            flags = set(value.split())
    has = [f for f in ARITHMETIC_FLAGS if f in flags]
    return f"{model or platform.machine() or 'unknown'} ({' '.join(has) or 'none of ' + '/'.join(ARITHMETIC_FLAGS)})"


def machine(device: torch.device) -> dict[str, str | int]:
    """The report fields that name the machine: the CPU (:func:`cpu_kind`) and the kernel family torch chose
    for it (``torch.backends.cpu.get_cpu_capability``: what ``ATEN_CPU_CAPABILITY`` can override), torch's
    version and threads, and the GPU's name when the trial runs on one ("" otherwise). Torch loads here, not
    at import."""
    import torch  # noqa: PLC0415

    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else ""
    return {"cpu": cpu_kind(), "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "torch_version": torch.__version__, "torch_threads": torch.get_num_threads(), "gpu": gpu}
