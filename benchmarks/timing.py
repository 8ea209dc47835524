"""Wall-clock measurement: warm-up, then repeats, medians; several functions interleaved so that load
from other processes on this shared 2-core machine hits the measured code and its baseline alike.

Besides time, each measurement records what the kernel did to the process: minor page faults per call
(fresh large temporaries cost a fault per 4 KiB page the first time they are touched) and the share of
the time spent in the kernel (``sys``), both from ``getrusage``.
"""

from __future__ import annotations

import resource
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field


@dataclass
class Timing:
    """Seconds per call of one measured function."""

    samples: list[float]
    """Seconds of each timed call (or of each call averaged over a block), warm-up excluded."""
    warmup: int
    """Calls made before timing started."""
    minor_faults: int = 0
    """Minor page faults during the timed calls."""
    sys_seconds: float = 0.0
    """Kernel CPU seconds during the timed calls."""
    calls: int = 0
    """Timed calls (``len(samples)`` times the block size)."""
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def repeats(self) -> int:
        return self.calls

    @property
    def faults_per_call(self) -> float:
        return self.minor_faults / max(self.calls, 1)

    @property
    def sys_fraction(self) -> float:
        """Kernel time as a fraction of the timed wall time."""
        return self.sys_seconds / max(sum(self.samples) * self.calls / max(len(self.samples), 1), 1e-12)

    def summary(self) -> dict[str, float | int]:
        return {"median_s": self.median, "min_s": min(self.samples), "max_s": max(self.samples),
                "timed_calls": self.calls, "warmup_calls": self.warmup,
                "minor_faults_per_call": round(self.faults_per_call, 1),
                "sys_time_fraction": round(self.sys_fraction, 3)}


def measure_interleaved(fns: Mapping[str, Callable[[], object]], repeats: int, warmup: int = 1,
                        block: int = 1) -> dict[str, Timing]:
    """Time each function ``repeats`` times (after ``warmup`` untimed calls each), alternating between
    them in blocks of ``block`` calls; a sample is a block's mean seconds per call."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    out = {name: Timing(samples=[], warmup=warmup) for name in fns}
    blocks = -(-repeats // block)  # 0 repeats: warm-up only
    for _ in range(blocks):
        for name, fn in fns.items():
            t = out[name]
            before = resource.getrusage(resource.RUSAGE_SELF)
            start = time.perf_counter()
            for _ in range(block):
                fn()
            elapsed = time.perf_counter() - start
            after = resource.getrusage(resource.RUSAGE_SELF)
            t.samples.append(elapsed / block)
            t.calls += block
            t.minor_faults += after.ru_minflt - before.ru_minflt
            t.sys_seconds += after.ru_stime - before.ru_stime
    return out


def measure(fn: Callable[[], object], repeats: int, warmup: int = 1, block: int = 1) -> Timing:
    """:func:`measure_interleaved` for a single function."""
    return measure_interleaved({"fn": fn}, repeats, warmup, block)["fn"]
