"""The machine a trial report names: the CPU model and the instruction sets that decide torch's kernels (and
so its rounding), read from a real ``/proc/cpuinfo``-format file, and the fallback where there is none."""

from __future__ import annotations

import platform
from pathlib import Path

import torch

from trials.host import ARITHMETIC_FLAGS, cpu_kind, machine

CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse2 avx avx2 fma avx512f avx512bw avx512_bf16 amx_bf16 amx_tile

processor\t: 1
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse2 avx avx2 fma avx512f avx512bw avx512_bf16 amx_bf16 amx_tile
"""


def test_the_cpu_is_named_with_the_flags_that_change_its_arithmetic(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text(CPUINFO)
    assert cpu_kind(info) == "Intel(R) Xeon(R) Platinum 8480+ (avx2 fma avx512f avx512_bf16 amx_bf16)"
    old = tmp_path / "old"
    old.write_text("model name\t: Old CPU\nflags\t\t: fpu sse2\n")
    assert cpu_kind(old) == f"Old CPU (none of {'/'.join(ARITHMETIC_FLAGS)})"
    assert cpu_kind(tmp_path / "absent") == (platform.processor() or platform.machine() or "unknown")
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nBogoMIPS\t: 243.75\nFeatures\t: fp asimd sve bf16 i8mm\n")
    assert cpu_kind(arm) == f"{platform.machine() or 'unknown'} (asimd sve bf16)"


def test_a_report_names_this_machine() -> None:
    """On this machine: the CPU as /proc/cpuinfo names it, the kernel family torch chose (DEFAULT, AVX2,
    AVX512 ...), no GPU on a CPU device."""
    here = machine(torch.device("cpu"))
    with open("/proc/cpuinfo") as f:
        model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    assert str(here["cpu"]).startswith(f"{model} (") and here["gpu"] == ""
    assert here["torch_cpu_capability"] in {"DEFAULT", "AVX2", "AVX512", "SVE256", "NO AVX", "ZVECTOR", "VSX"}
    assert here["torch_version"] == torch.__version__ and here["torch_threads"] == torch.get_num_threads()
