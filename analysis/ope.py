"""How far an offline estimate of a policy's return can be trusted to choose among a sweep's trials: the
measures of Paine et al. (2020) and the DOPE benchmark (Fu et al. 2021), against the simulator's score.

- Spearman's rank correlation between the estimate and the true score over the finished trials, with a
  bootstrap 95% interval, and regret@k (``analysis.ranking``), in the score's own units (D4RL-normalised);
- beside them, what the data itself earned: the discounted return of each of its episodes from its first
  row (:class:`DataReturns`). An estimate above the data's best episode is an extrapolation (a policy worth
  more than anything the data shows, which FQE and the model can only infer): the table counts them, the
  scatter draws the line, so a user sees whether the estimator's top choice rests on data or on its guess.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from analysis.online_budget import final_episode_scores
from analysis.ranking import RankAgreement, agreement
from trials.config import ESTIMATORS, EstimateConfig
from trials.data.dataset import DatasetError, dataset_env, load_dataset
from trials.envs import get_env_spec
from trials.measure.fqe import discounted_returns
from tuner.store.records import RAN_OUT, read_trials
from tuner.store.spec import SweepSpec

#: Folder of a sweep where ``mbrl-tune estimate`` writes (``tuner.run.estimate``).
ESTIMATES_DIR = "estimates"

@dataclass(frozen=True)
class DataReturns:
    """The discounted returns the dataset's own episodes earned, from their first rows (the estimates' units)."""

    episodes: int
    mean: float
    best: float
    """The largest: an estimate above it values a policy beyond anything the data shows."""
    gamma: float


def data_returns(dataset: str, gamma: float, env: str | None = None) -> DataReturns | None:
    """:class:`DataReturns` of ``dataset`` (a path, ``d4rl:`` or ``minari:`` source; ``env`` as the trials
    were given it, which Minari sources and env-less D4RL files need); None when it cannot be loaded
    (gone, unreadable, or its env unknown)."""
    try:
        returns = discounted_returns(load_dataset(dataset, env), gamma)
    except (DatasetError, OSError):
        return None
    return DataReturns(len(returns), float(returns.mean()), float(returns.max()), gamma)


def ranked_rows(rows: Sequence[dict[str, Any]], estimator: str) -> list[dict[str, Any]]:
    """The rows :func:`agreement` ranks: a finite simulator score and a finite estimate."""
    return [r for r in rows if math.isfinite(float(r["score"])) and math.isfinite(float(r[estimator]))]


def top_pick(rows: Sequence[dict[str, Any]], estimator: str) -> dict[str, Any] | None:
    """The ranked row (:func:`ranked_rows`) the estimator values highest: the choice regret@1 judges."""
    return max(ranked_rows(rows, estimator), key=lambda r: float(r[estimator]), default=None)


def above_data(rows: Sequence[dict[str, Any]], estimator: str, data: DataReturns) -> int:
    """How many of the ranked ``rows`` (:func:`ranked_rows`) the estimator values above the data's best episode."""
    return sum(1 for r in ranked_rows(rows, estimator) if float(r[estimator]) > data.best)


# ---------------------------------------------------------------- a sweep's estimates, as the report reads them
@dataclass(frozen=True)
class SweepEstimates:
    """One dataset's trials of one sweep with their simulator score and offline estimates."""

    sweep: str
    dataset: str
    """The dataset's path, as the sweep names it."""
    experiment: str
    source: str
    """``mbrl-tune estimate`` (its file) or ``the trials' own reports`` (an ``--objective fqe|model`` sweep)."""
    rows: list[dict[str, Any]]
    """Per finished trial: ``trial``, ``score`` and one value per estimator present."""
    agreement: dict[str, RankAgreement]
    seconds: dict[str, float]
    """Estimator -> mean seconds per trial (its cost)."""
    objective: str
    """What the sweep optimised (``simulator``, ``fqe``, ``model``)."""
    data: DataReturns | None
    """What the dataset's own episodes earned, in the estimates' discount; None when it cannot be loaded."""


def sweep_estimates(spec: SweepSpec) -> list[SweepEstimates]:
    """Per dataset of the sweep: the estimates ``mbrl-tune estimate`` wrote into ``<sweep>/estimates/``, or
    else those its trials reported themselves; datasets with neither are left out."""
    out = []
    for dataset in spec.datasets:
        experiment = spec.experiment_name(dataset)
        path = spec.root / ESTIMATES_DIR / f"{experiment}.json"
        rows: list[dict[str, Any]]
        gamma = EstimateConfig.model_validate(spec.base.get("estimate") or {}).gamma
        if path.is_file():
            stored = json.loads(path.read_text())
            rows, source = stored["rows"], "mbrl-tune estimate"
            gamma = float(stored.get("settings", {}).get("gamma", gamma))
        else:
            rows, source = [], "the trials' own reports"
            for record in read_trials(spec.experiment_dir(dataset)):
                last = record.last
                if record.status in RAN_OUT and any(f"score_{e}" in last for e in ESTIMATORS):
                    rows.append({"trial": record.name, "score": float(last.get("score", math.nan)),
                                 **{e: float(last[f"score_{e}"]) for e in ESTIMATORS if f"score_{e}" in last},
                                 **{f"{e}_seconds": float(last[f"{e}_seconds"]) for e in ESTIMATORS
                                    if f"{e}_seconds" in last}})
        if not rows:
            continue
        seconds = {e: float(np.mean([r[f"{e}_seconds"] for r in rows if f"{e}_seconds" in r]))
                   for e in ESTIMATORS if any(f"{e}_seconds" in r for r in rows)}
        present = [e for e in ESTIMATORS if all(e in r for r in rows)]
        scores = [float(r["score"]) for r in rows]
        out.append(SweepEstimates(spec.name, dataset, experiment, source, rows,
                                  {e: agreement(scores, [float(r[e]) for r in rows]) for e in present},
                                  seconds, spec.objective, data_returns(dataset, gamma, spec.base.get("env"))))
    return out


def agreement_row(est: SweepEstimates, estimator: str) -> list[str]:
    """One table row: the estimator's rank agreement and regrets on one sweep's dataset, and its cost."""
    a = est.agreement[estimator]

    def num(x: float) -> str:
        return "-" if math.isnan(x) else f"{x:.2f}"

    chosen = " (objective)" if est.objective == estimator else ""
    cost = est.seconds.get(estimator)
    beyond = "-"
    top = top_pick(est.rows, estimator)
    if est.data is not None and top is not None:
        where = "above" if float(top[estimator]) > est.data.best else "within"
        beyond = (f"{above_data(est.rows, estimator, est.data)} of {a.n} (best episode "
                  f"{est.data.best:.3g}; top pick {where})")
    return [f"{est.sweep} / {est.experiment}", f"{estimator}{chosen}", str(a.n),
            f"{num(a.spearman)} [{num(a.spearman_low)}, {num(a.spearman_high)}]",
            num(a.regret.get(1, math.nan)), num(a.regret.get(3, math.nan)),
            num(max(float(r["score"]) for r in est.rows)), beyond, "-" if cost is None else f"{cost:.3g}", est.source]


AGREEMENT_HEADER = ["sweep / dataset", "estimator", "trials", "Spearman [95% CI]", "regret@1", "regret@3",
                    "best true score", "valued above the data's best episode", "seconds per trial", "from"]
AGREEMENT_TEXT = ("How well each offline estimate of the trials' final policies (no simulator: fqe, fitted Q "
                  "evaluation on the dataset; model, the discounted return in another seed's dynamics pool) ranks "
                  "them against their simulator score: Spearman's rho with a bootstrap 95% interval over trials, "
                  "and regret@k, the best true score minus the best true score among the estimate's top k "
                  "(D4RL-normalised; 0: its top k hold the best trial). \"Valued above the data's best "
                  "episode\": trials the estimate puts above the largest discounted return any of the dataset's "
                  "own episodes earned (same discount, from their first rows); there the estimate extrapolates "
                  "beyond the data, and a top pick above it rests on the estimator's inference alone.")


def trial_episodes(spec: SweepSpec, dataset: str) -> tuple[dict[str, np.ndarray], float | None]:
    """Per finished trial of one of the sweep's datasets (its path): the episode scores of its final policies
    (:func:`analysis.online_budget.final_episode_scores`), and the first trial's mean (the hand-tuned setting
    a sweep starts from), for the online-budget curve. Nothing when the dataset file is gone (its env, and
    so the scores' normalisation, unknown)."""
    try:
        env = get_env_spec(dataset_env(dataset))
    except DatasetError:
        return {}, None
    out: dict[str, np.ndarray] = {}
    first: float | None = None
    for record in read_trials(spec.experiment_dir(dataset)):
        if record.status not in RAN_OUT:
            continue
        scores = final_episode_scores(record, record.seeds or [record.trial_config().seed], env)
        if scores:
            out[record.name] = np.array(scores)
            if record.order == 1:
                first = float(np.mean(scores))
    return out, first


def offline_picks(est: SweepEstimates) -> dict[str, float]:
    """Estimator -> the simulator score of the trial it ranks first (a choice made with no online episode)."""
    out = {}
    for e in est.agreement:
        top = top_pick(est.rows, e)
        if top is not None:
            out[e] = float(top["score"])
    return out
