"""The table of best found vs hand-tuned, from the runs ``tuner.run.compare`` cached in ``<sweep>/compare/<source>/``.

Per dataset, on the fresh seeds (which neither arm was selected on): the baseline's and the best
configuration's mean ± standard deviation of the final D4RL-normalised score, and their difference
(best - baseline) with 95% confidence intervals, Welch's t interval (``scipy.stats.ttest_ind`` with
unequal variances) and a percentile bootstrap (each arm resampled on its own). Beside them: the
baseline on the sweep's seeds, and the best configuration's in-sweep score (selected on those seeds, so
optimistic), and the two configurations side by side. Written as ``comparison.csv`` (flat; configs as
JSON strings) and ``comparison.json`` (nested, per-seed scores included) next to the runs.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from analysis.tables import write_table
from tuner.store.compare_plan import (
    CompareArm,
    ComparePlan,
    arm_run_config,
    compare_dir,
    finished_runs,
    load_plan,
    run_key,
)

TABLE_CSV = "comparison.csv"
TABLE_JSON = "comparison.json"
BOOTSTRAP_SAMPLES = 10_000
CONFIDENCE = 0.95
#: Config keys shown side by side (those set by either arm are shown too).
SHOWN_KEYS = ("penalty", "lam", "rollout.horizon", "num_models", "num_elites", "real_ratio")


@dataclass
class Interval:
    low: float
    high: float


def mean_std(x: np.ndarray) -> tuple[float, float]:
    """Mean and sample standard deviation (NaN for fewer than 2 values)."""
    if len(x) == 0:
        return math.nan, math.nan
    return float(x.mean()), float(x.std(ddof=1)) if len(x) > 1 else math.nan


def welch_interval(best: np.ndarray, base: np.ndarray) -> tuple[Interval, float]:
    """Welch's t interval for mean(best) - mean(base), and the two-sided p-value; NaN with < 2 per arm.
    Two constant arms give a zero-width interval at the difference (no sampling noise was seen)."""
    if len(best) < 2 or len(base) < 2:
        return Interval(math.nan, math.nan), math.nan
    diff = float(best.mean() - base.mean())
    if best.var() == 0 and base.var() == 0:
        return Interval(diff, diff), (1.0 if diff == 0 else 0.0)
    res = stats.ttest_ind(best, base, equal_var=False)
    ci = res.confidence_interval(CONFIDENCE)
    return Interval(float(ci.low), float(ci.high)), float(res.pvalue)


def bootstrap_interval(best: np.ndarray, base: np.ndarray, seed: int = 0) -> Interval:
    """Percentile bootstrap interval of mean(best) - mean(base), each arm resampled independently."""
    if len(best) < 2 or len(base) < 2:
        return Interval(math.nan, math.nan)
    rng = np.random.default_rng(seed)
    diffs = (rng.choice(best, (BOOTSTRAP_SAMPLES, len(best))).mean(1)
             - rng.choice(base, (BOOTSTRAP_SAMPLES, len(base))).mean(1))
    alpha = (1 - CONFIDENCE) / 2
    return Interval(float(np.quantile(diffs, alpha)), float(np.quantile(diffs, 1 - alpha)))


def _scores(arm: CompareArm, seeds: list[int], runs: dict[str, Any]) -> dict[int, float]:
    out = {}
    for seed in seeds:
        record = runs.get(run_key(arm_run_config(arm, seed)))
        if record is not None:
            out[seed] = float(record.last["score"])
    return out


def _shown(arm: CompareArm, keys: list[str]) -> dict[str, Any]:
    flat = _flatten(arm.config)
    return {k: arm.setting.get(k, flat.get(k)) for k in keys}


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def comparison_rows(plan: ComparePlan, folder: Path) -> list[dict[str, Any]]:
    """One record per dataset (nested: configs and per-seed scores as dicts)."""
    rows = []
    for entry in plan.datasets:
        runs = finished_runs(folder, entry.experiment)
        arms = {a.name: a for a in entry.arms}
        baseline, best = arms["baseline"], arms["best"]
        base_fresh = _scores(baseline, entry.fresh_seeds, runs)
        best_fresh = _scores(best, entry.fresh_seeds, runs)
        base_sweep = _scores(baseline, entry.sweep_seeds, runs)
        b, x = np.array(list(base_fresh.values())), np.array(list(best_fresh.values()))
        welch, p_value = welch_interval(x, b)
        boot = bootstrap_interval(x, b)
        keys = list(dict.fromkeys([*SHOWN_KEYS, *baseline.setting, *best.setting]))
        rows.append({
            "dataset": entry.experiment, "name": entry.name, "source": plan.source,
            "fresh_seeds": entry.fresh_seeds, "sweep_seeds": entry.sweep_seeds,
            "n_baseline": len(b), "n_best": len(x),
            "baseline_mean": mean_std(b)[0], "baseline_std": mean_std(b)[1],
            "best_mean": mean_std(x)[0], "best_std": mean_std(x)[1],
            "diff": float(x.mean() - b.mean()) if len(x) and len(b) else math.nan,
            "diff_ci_low": welch.low, "diff_ci_high": welch.high, "welch_p": p_value,
            "diff_boot_low": boot.low, "diff_boot_high": boot.high,
            "baseline_sweep_seeds_mean": mean_std(np.array(list(base_sweep.values())))[0],
            "baseline_sweep_seeds_std": mean_std(np.array(list(base_sweep.values())))[1],
            "best_sweep_score": best.sweep_score if best.sweep_score is not None else math.nan,
            "best_sweep_trial": best.sweep_trial,
            "baseline_config": _shown(baseline, keys), "best_config": _shown(best, keys),
            "baseline_scores": {**base_sweep, **base_fresh}, "best_scores": best_fresh,
        })
    return rows


def comparison_table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The flat table (CSV form): lists and dicts as JSON strings."""
    flat = [{k: json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else v for k, v in r.items()}
            for r in rows]
    return pd.DataFrame(flat)


@dataclass
class ComparisonOutputs:
    rows: list[dict[str, Any]]
    """One nested record per dataset."""
    table: pd.DataFrame
    """The flat table."""
    csv: Path
    json: Path


def write_comparison(sweep_dir: Path, source: str) -> ComparisonOutputs | None:
    """Build the table from the cached runs and write it beside them; None if ``compare`` never ran."""
    folder = compare_dir(sweep_dir, source)
    plan = load_plan(folder)
    if plan is None:
        return None
    rows = comparison_rows(plan, folder)
    table = comparison_table(rows)
    payload = {"source": source, "sweep": plan.sweep, "skipped": plan.skipped, "rows": rows}
    if not write_table(folder / TABLE_JSON, folder / TABLE_CSV, payload, table.to_csv(index=False), rows,
                       _measure, lambda stored: stored["rows"]):
        rows = json.loads((folder / TABLE_JSON).read_text())["rows"]
        table = comparison_table(rows)
    return ComparisonOutputs(rows, table, folder / TABLE_CSV, folder / TABLE_JSON)


def _measure(row: dict[str, Any]) -> tuple[str, int]:
    """A comparison row's identity (dataset and both configurations) and its finished runs."""
    identity = json.dumps([row["dataset"], row["baseline_config"], row["best_config"]], sort_keys=True, default=str)
    return identity, len(row["baseline_scores"]) + len(row["best_scores"])


def sources_compared(sweep_dir: Path) -> list[str]:
    """Baseline sources with a cached comparison in the sweep folder."""
    root = Path(sweep_dir) / "compare"
    return sorted(p.parent.name for p in root.glob("*/plan.json")) if root.is_dir() else []


def _pm(mean: float, std: float, n: int) -> str:
    if math.isnan(mean):
        return "-"
    return f"{mean:.2f} ± {std:.2f} (n={n})" if not math.isnan(std) else f"{mean:.2f} (n={n})"


def _v(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def format_comparison(rows: list[dict[str, Any]]) -> str:
    """The comparison as text, a block per dataset (the CLI prints it)."""
    lines = []
    for r in rows:
        lines.append(f"{r['dataset']} ({r['name']}), baseline {r['source']}; fresh seeds {r['fresh_seeds']}, "
                     f"sweep seeds {r['sweep_seeds']}")
        width = max(len(k) for k in r["baseline_config"]) + 2
        lines.append(f"  {'':<{width}}{'hand-tuned baseline':<28}best found")
        lines.append(f"  {'fresh seeds':<{width}}{_pm(r['baseline_mean'], r['baseline_std'], r['n_baseline']):<28}"
                     f"{_pm(r['best_mean'], r['best_std'], r['n_best'])}")
        n_sweep = len(r["sweep_seeds"])
        lines.append(f"  {'sweep seeds':<{width}}"
                     f"{_pm(r['baseline_sweep_seeds_mean'], r['baseline_sweep_seeds_std'], n_sweep):<28}"
                     f"{r['best_sweep_score']:.2f} (trial {r['best_sweep_trial']}, selected on these seeds)")
        for key in r["baseline_config"]:
            lines.append(f"  {key:<{width}}{_v(r['baseline_config'][key]):<28}{_v(r['best_config'][key])}")
        if math.isnan(r["diff"]):
            lines.append("  difference: no finished runs on the fresh seeds yet")
        else:
            lines.append(f"  difference best - baseline on fresh seeds: {r['diff']:+.2f}; 95% CI "
                         f"[{r['diff_ci_low']:+.2f}, {r['diff_ci_high']:+.2f}] (Welch, p={r['welch_p']:.3g}), "
                         f"[{r['diff_boot_low']:+.2f}, {r['diff_boot_high']:+.2f}] (bootstrap)")
        lines.append("")
    return "\n".join(lines).rstrip()
