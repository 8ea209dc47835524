"""How well each uncertainty heuristic tracks the true model error: correlation tables and scatter plots
from a :class:`trials.measure.calibration.CalibrationResult`.

For every horizon k (the model step a prediction is made at; k = 1 is one step from dataset states) and
every heuristic: Spearman's rank correlation (what a penalty needs: rank transitions by how wrong the
model is) and Pearson's linear correlation with the true error of the ensemble mean prediction, plus
Spearman against the error of the sampled next state. Written to a folder (``mbrl-tune calibrate --out``;
the report looks in ``<sweep>/calibration``):

- ``calibration.npz``: every measured row (see ``CalibrationResult``);
- ``calibration.csv`` / ``calibration.json``: the table (the JSON also holds the run's provenance);
- ``scatter-<heuristic>.png``: the heuristic against the true error, a colour per horizon.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from trials.files import DamagedFileError, atomic_write_text, read_json
from trials.measure.calibration import CalibrationResult

RESULT_FILE = "calibration.npz"
TABLE_CSV = "calibration.csv"
TABLE_JSON = "calibration.json"
MIN_ROWS = 3

COLUMNS = ["horizon", "heuristic", "n", "exact_fraction", "spearman", "spearman_p", "pearson", "pearson_p",
           "spearman_sample_error", "mean_true_error", "mean_heuristic"]


def _corr(fn: str, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(statistic, p-value), NaN when undefined (too few rows, or a constant side)."""
    if len(x) < MIN_ROWS or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan, math.nan
    res = getattr(stats, fn)(x, y)
    return float(res.statistic), float(res.pvalue)


def correlation_table(result: CalibrationResult, horizons: list[int] | None = None) -> pd.DataFrame:
    """One row per (horizon, heuristic); ``horizons`` defaults to every step measured."""
    steps = sorted({int(s) for s in result.step}) if horizons is None else horizons
    rows = []
    for k in steps:
        at_k = result.step == k
        for name, values in result.heuristics.items():
            mask = at_k & np.isfinite(values) & np.isfinite(result.true_error)
            x, y = values[mask], result.true_error[mask]
            spearman, spearman_p = _corr("spearmanr", x, y)
            pearson, pearson_p = _corr("pearsonr", x, y)
            sample_rho, _ = _corr("spearmanr", x, result.sample_error[mask])
            rows.append({"horizon": k, "heuristic": name, "n": int(mask.sum()),
                         "exact_fraction": float(result.exact[mask].mean()) if mask.any() else math.nan,
                         "spearman": spearman, "spearman_p": spearman_p, "pearson": pearson, "pearson_p": pearson_p,
                         "spearman_sample_error": sample_rho,
                         "mean_true_error": float(y.mean()) if len(y) else math.nan,
                         "mean_heuristic": float(x.mean()) if len(x) else math.nan})
    return pd.DataFrame(rows, columns=COLUMNS)


@dataclass
class CalibrationOutputs:
    """What :func:`write_calibration` wrote (and :func:`read_calibration` finds)."""

    table: pd.DataFrame
    """The correlation table."""
    meta: dict
    """Provenance of the measurement (env, dataset hash, pool, policy, states, horizons)."""
    result_path: Path
    table_csv: Path
    table_json: Path
    figures: dict[str, Path]
    """Heuristic -> its scatter PNG."""


def write_calibration(result: CalibrationResult, out_dir: Path, horizons: list[int] | None = None,
                      extra_meta: dict | None = None) -> CalibrationOutputs:
    """Save the rows, the table (CSV and JSON) and a scatter plot per heuristic into ``out_dir``."""
    from analysis.plots import plot_calibration_scatter  # noqa: PLC0415  (matplotlib only when plotting)

    out_dir.mkdir(parents=True, exist_ok=True)
    if extra_meta:
        result.meta.update(extra_meta)
    result_path = result.save(out_dir / RESULT_FILE)
    table = correlation_table(result, horizons)
    csv_path, json_path = out_dir / TABLE_CSV, out_dir / TABLE_JSON
    atomic_write_text(csv_path, table.to_csv(index=False))
    doc = {"meta": {**result.meta, "horizons": [int(h) for h in table["horizon"].unique()]},
           "table": json.loads(table.to_json(orient="records"))}
    atomic_write_text(json_path, json.dumps(doc, indent=2))
    figures = {}
    shown = sorted(table["horizon"].unique().tolist())
    for name, values in result.heuristics.items():
        path = plot_calibration_scatter(values, result.true_error, result.step, shown, name, table,
                                        out_dir / f"scatter-{name}.png")
        if path is not None:
            figures[name] = path
    return CalibrationOutputs(table, doc["meta"], result_path, csv_path, json_path, figures)


def read_calibration(out_dir: Path) -> CalibrationOutputs | None:
    """The outputs of an earlier :func:`write_calibration` in ``out_dir``, None if there are none."""
    json_path = out_dir / TABLE_JSON
    if not json_path.is_file():
        return None
    try:
        doc = read_json(json_path, "calibration table", f"left out; mbrl-tune calibrate --out {out_dir} rebuilds it",
                        ("table",))
        table = pd.DataFrame(doc["table"], columns=COLUMNS)
    except (DamagedFileError, ValueError) as exc:  # ValueError: rows that do not fit the table's columns
        print(f"note: {exc}", file=sys.stderr)
        return None
    figures = {p.stem.removeprefix("scatter-"): p for p in sorted(out_dir.glob("scatter-*.png"))}
    return CalibrationOutputs(table, doc.get("meta", {}), out_dir / RESULT_FILE, out_dir / TABLE_CSV, json_path,
                              figures)


def format_table(table: pd.DataFrame) -> str:
    """The table as aligned text (the CLI prints it)."""
    shown = table[["horizon", "heuristic", "n", "exact_fraction", "spearman", "pearson", "spearman_sample_error",
                   "mean_true_error"]]
    return shown.to_string(index=False, float_format=lambda v: f"{v:.3f}")
