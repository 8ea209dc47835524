"""Benchmark rows, the printed table and the JSON file.

A row is one measured quantity: its value and unit, the number of timed repeats, FLOPs per unit of work
(then GFLOP/s and the fraction of the machine's measured matmul peak), and a baseline measured in the
same process run with ``speedup`` = how many times better ours is (baseline time / our time, or our rate
/ baseline rate), so the ratio survives the load other processes put on this shared machine.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from trials.config import atomic_write_text

TIME_UNITS = ("s", "s/update", "s/step", "s/round", "s/epoch", "s/trial", "s/proposal", "s/call", "s/pool",
              "s/update/policy")


@dataclass
class Row:
    """One line of the table (and one object in the JSON ``rows`` list)."""

    name: str
    """Stable identifier, e.g. ``sac_update`` or ``rollout[ll_var]``."""
    group: str
    """The benchmark group that measured it (``--only`` takes group names)."""
    value: float
    """The measurement: seconds for time units, else in ``unit``."""
    unit: str
    repeats: int
    """Timed repeats behind ``value`` (a median for time rows, unless ``details`` says otherwise)."""
    what: str
    """What exactly was measured, at which sizes."""
    flops: float | None = None
    """FLOPs per unit of ``value`` (e.g. per update), from the layer sizes; see ``flop_formula``."""
    flop_formula: str | None = None
    gflops: float | None = None
    peak_fraction: float | None = None
    """``gflops`` over the measured single-thread fp32 matmul peak (row ``peak_matmul``)."""
    baseline: str | None = None
    """Short label of the baseline (the table column)."""
    baseline_what: str | None = None
    """What exactly the baseline is."""
    baseline_value: float | None = None
    """The baseline's measurement, same unit."""
    speedup: float | None = None
    """>1: ours is better than the baseline by this factor (same run, same sizes); for a time unit with a
    ``baseline_value``, baseline over ours unless given."""
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.speedup is None and self.baseline_value is not None and self.unit in TIME_UNITS:
            self.speedup = time_speedup(self.value, self.baseline_value)

    def with_peak(self, peak_gflops: float | None) -> Row:
        """Fill ``gflops`` and ``peak_fraction`` from ``flops`` and the measured peak."""
        if self.flops is not None and self.unit in TIME_UNITS and self.value > 0:
            self.gflops = self.flops / self.value / 1e9
            if peak_gflops:
                self.peak_fraction = self.gflops / peak_gflops
        return self


def time_speedup(ours: float, baseline: float) -> float:
    """Baseline seconds over ours."""
    return baseline / ours if ours > 0 else math.nan


def _fmt_value(value: float | None, unit: str) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    if unit in TIME_UNITS:
        suffix = unit[1:]  # "/update" etc.
        if value < 1e-3:
            return f"{value * 1e6:.1f} us{suffix}"
        if value < 1.0:
            return f"{value * 1e3:.2f} ms{suffix}"
        return f"{value:.2f} s{suffix}"
    return f"{value:,.1f} {unit}"


def _fmt_opt(value: float | None, pattern: str) -> str:
    return "-" if value is None or not math.isfinite(value) else pattern.format(value)


def format_table(rows: list[Row]) -> str:
    """The fixed-width table printed at the end of a run."""
    header = ("name", "value", "reps", "GFLOP/s", "%peak", "baseline (same run)", "baseline value", "speedup")
    lines = []
    for r in rows:
        lines.append((r.name, _fmt_value(r.value, r.unit), str(r.repeats), _fmt_opt(r.gflops, "{:.1f}"),
                      _fmt_opt(None if r.peak_fraction is None else 100 * r.peak_fraction, "{:.0f}%"),
                      r.baseline or "-", _fmt_value(r.baseline_value, r.unit) if r.baseline_value else "-",
                      _fmt_opt(r.speedup, "{:.2f}x")))
    widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h) for i, h in enumerate(header)]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)),
           "  ".join("-" * w for w in widths)]
    for line in lines:
        out.append("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)))
    return "\n".join(out)


def format_notes(rows: list[Row]) -> str:
    """Per row: what was measured, the FLOP formula and the details worth reading."""
    out = []
    last_formula = None
    for r in rows:
        out.append(f"- {r.name}: {r.what}")
        if r.baseline_what:
            out.append(f"    baseline: {r.baseline_what}")
        if r.flop_formula:
            formula = "as above" if r.flop_formula == last_formula else r.flop_formula
            out.append(f"    FLOPs: {formula} = {r.flops:.4g} per {r.unit.removeprefix('s/') or 'call'}")
            last_formula = r.flop_formula
        if r.details:
            shown = ", ".join(f"{k}={_fmt_detail(v)}" for k, v in r.details.items() if not isinstance(v, dict))
            if shown:
                out.append(f"    {shown}")
    return "\n".join(out)


def _fmt_detail(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def write_json(path: Path, meta: dict[str, Any], rows: list[Row]) -> None:
    """The whole report as JSON, written atomically (complete or absent)."""
    payload = {"meta": meta, "rows": [asdict(r) for r in rows]}
    atomic_write_text(path, json.dumps(payload, indent=2, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")
