"""A sweep folder as pandas tables: one row per trial, and one row per (trial, epoch).

Reads only what ``mbrl-tune sweep`` wrote (``sweep.json``, ``space.yaml``, the Tune experiment folder of
each dataset, through :func:`tuner.store.records.read_trials`); it never trains and never imports Ray.
``sweep.json`` is read through the Ray-free ``tuner.store.spec.SweepSpec``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from search_spaces.parse import load_space
from search_spaces.space import RangeParameter, SearchSpace
from tuner.store.records import ENDED, TrialRecord, read_trials
from tuner.store.spec import SweepSpec

#: Trial statuses that carry a final score (ASHA-stopped trials: the score of their last epoch).
COMPLETED = ENDED


def sweep_space(spec: SweepSpec) -> SearchSpace | None:
    """The search space as the sweep used it (``space.yaml``), None if absent."""
    path = spec.root / "space.yaml"
    return load_space(path) if path.is_file() else None


@dataclass
class SweepResults:
    """Everything tabular about one or more sweeps."""

    trials: pd.DataFrame
    """One row per trial: sweep, searcher, dataset, trial_id, order, status, epochs, score, best_score,
    ``score_seed<S>``, wall_s, then the trial's config overrides (dotted keys as columns)."""
    history: pd.DataFrame
    """One row per (trial, epoch): sweep, dataset, trial_id, epoch and every numeric metric reported."""
    params: list[str]
    """Searched config keys (columns of ``trials``), in space order; fixed values are not listed."""
    log_scale: set[str]
    """Searched keys on a log scale in their space (plots use log axes for them)."""
    sweeps: list[SweepSpec]
    """The sweeps read, in the order given."""


def trial_order(record: TrialRecord) -> int:
    """Tune's creation index of the trial (see :attr:`tuner.store.records.TrialRecord.order`)."""
    return record.order


def _finite(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    return float(value) if math.isfinite(value) else math.nan


def _wall_seconds(history: list[dict[str, Any]]) -> float:
    """Training wall-clock: the sum of Tune's per-report ``time_this_iter_s`` (the last ``time_total_s``
    when those are missing). A resumed trial's re-reported epochs are counted once (de-duplicated rows)."""
    per_iter = [r["time_this_iter_s"] for r in history if isinstance(r.get("time_this_iter_s"), (int, float))]
    if per_iter:
        return float(sum(per_iter))
    totals = [r["time_total_s"] for r in history if isinstance(r.get("time_total_s"), (int, float))]
    return float(totals[-1]) if totals else math.nan


def _trial_row(info: SweepSpec, dataset: str, record: TrialRecord) -> dict[str, Any]:
    scores = [_finite(r.get("score")) for r in record.history]
    finite = [s for s in scores if not math.isnan(s)]
    last = record.last
    row: dict[str, Any] = {
        "sweep": info.name, "searcher": info.searcher, "dataset": Path(dataset).stem, "trial": record.name,
        "trial_id": record.trial_id, "order": trial_order(record), "status": record.status,
        "epochs": int(last.get("epoch", 0) or 0),
        "score": _finite(last.get("score")) if record.status in COMPLETED else math.nan,
        "best_score": max(finite) if finite else math.nan,
        # What the sweep ranks its trials by: the simulator score, or an offline estimate (``--objective``).
        "objective": _finite(last.get(info.metric)) if record.status in COMPLETED else math.nan,
    }
    for seed in record.seeds or info.seeds:
        row[f"score_seed{seed}"] = _finite(last.get(f"score_seed{seed}"))
    row["wall_s"] = _wall_seconds(record.history)
    row.update(record.overrides)
    return row


def _history_rows(info: SweepSpec, dataset: str, record: TrialRecord) -> list[dict[str, Any]]:
    out = []
    for report in record.history:
        row: dict[str, Any] = {"sweep": info.name, "dataset": Path(dataset).stem, "trial_id": record.trial_id}
        for key, value in report.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                row[key] = float(value)
        out.append(row)
    return out


def _searched(space: SearchSpace | None) -> tuple[list[str], set[str]]:
    if space is None:
        return [], set()
    keys: dict[str, None] = {}
    log: set[str] = set()
    for param, _, _ in space.iter_parameters():
        keys[param.key] = None
        if isinstance(param, RangeParameter) and param.log:
            log.add(param.key)
    return list(keys), log


def load_sweeps(sweep_dirs: list[str | Path]) -> SweepResults:
    """Read one or more sweep folders into one :class:`SweepResults` (a ``sweep`` column tells them
    apart; sweeps are expected to have distinct names)."""
    infos = [SweepSpec.load(d) for d in sweep_dirs]
    trial_rows: list[dict[str, Any]] = []
    history_rows: list[dict[str, Any]] = []
    params: dict[str, None] = {}
    log_scale: set[str] = set()
    for info in infos:
        keys, log = _searched(sweep_space(info))
        params.update(dict.fromkeys(keys))
        log_scale |= log
        for dataset in info.datasets:
            records = read_trials(info.experiment_dir(dataset))
            for record in records:
                trial_rows.append(_trial_row(info, dataset, record))
                history_rows.extend(_history_rows(info, dataset, record))
    # Rows keep the order the sweeps were given in (legends and tables follow it), then dataset and trial order.
    rank = {info.name: i for i, info in enumerate(infos)}
    trials = pd.DataFrame(trial_rows)
    if trials.empty:
        trials = pd.DataFrame(columns=list(_FRAME_COLUMNS))
    else:
        trials = trials.sort_values(["sweep", "dataset", "order", "trial_id"], key=_by_rank(rank),
                                    kind="stable").reset_index(drop=True)
    history = pd.DataFrame(history_rows)
    if history.empty:
        history = pd.DataFrame(columns=["sweep", "dataset", "trial_id", "epoch"])
    else:
        history = history.sort_values(["sweep", "dataset", "trial_id", "epoch"], key=_by_rank(rank),
                                      kind="stable").reset_index(drop=True)
    if not params:  # no space.yaml: every override that varies counts as searched
        keys = [c for c in trials.columns if c not in _FRAME_COLUMNS and not c.startswith("score_seed")]
        params = {k: None for k in keys if trials[k].astype(str).nunique() > 1}
    return SweepResults(trials, history, [p for p in params if p in trials.columns], log_scale, infos)


def _by_rank(rank: dict[str, int]) -> Callable[[pd.Series], pd.Series]:
    """A sort key that orders the ``sweep`` column by the given ranks and leaves other columns as they are."""
    return lambda col: col.map(rank) if col.name == "sweep" else col


_FRAME_COLUMNS = ("sweep", "searcher", "dataset", "trial", "trial_id", "order", "status", "epochs", "score",
                  "best_score", "objective", "wall_s")


def load_sweep(sweep_dir: str | Path) -> SweepResults:
    """One sweep folder as tables (see :class:`SweepResults`)."""
    return load_sweeps([sweep_dir])


def completed(trials: pd.DataFrame) -> pd.DataFrame:
    """The trials with a final score (finished, diverged or stopped early)."""
    return trials[trials["status"].isin(COMPLETED) & np.isfinite(trials["score"].astype(float))]


def best_so_far(trials: pd.DataFrame) -> pd.DataFrame:
    """Per (sweep, dataset): trial number (1.. in creation order) and the best final score up to it;
    trials without a score carry the best so far forward."""
    out = []
    for (sweep, dataset), group in trials.groupby(["sweep", "dataset"], sort=False):
        group = group.sort_values("order", kind="stable")
        scores = group["score"].astype(float).where(group["status"].isin(COMPLETED))
        out.append(pd.DataFrame({"sweep": sweep, "dataset": dataset, "trial": np.arange(1, len(group) + 1),
                                 "score": scores.to_numpy(), "best": scores.cummax().ffill().to_numpy()}))
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame(
        columns=["sweep", "dataset", "trial", "score", "best"])
