"""The fidelity-transfer table and the learning curves of a confirmation (``tuner.run.confirm``).

Per dataset: each arm's score at the search budget and at the confirm budget (mean ± sample standard
deviation over the same seeds, per seed in the JSON), and beside it the late mean (each run's evaluations
in the last tenth of the confirm budget averaged, then the seeds: steadier than the score window where
evaluations swing); Kendall's tau between the arms' mean scores at the
two budgets (with its n; with ``--top-k all`` the arms are every finished trial, and a second tau compares
their sweep scores with the confirm budget's); the search budget judged as a predictor of the confirm
budget, with the measures an offline estimate gets (``analysis.ranking``: Spearman with a bootstrap
interval, regret@1, and regret@3 beyond 3 arms); the arm that wins at the confirm budget; and each arm
against the hand-tuned ``baseline`` at both budgets and by the late mean, with Welch and bootstrap 95% intervals
(``analysis.compare``) and, at the confirm budget, Welch's p Holm-adjusted over the arms (``best1``'s, the
sweep's winner's, is the headline). Written as ``confirmation.csv`` (a row per arm) and
``confirmation.json`` (per dataset, per-seed scores included) in the confirm folder.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from analysis.compare import bootstrap_interval, mean_std, welch_interval
from analysis.online_budget import final_episode_scores
from analysis.ranking import agreement
from analysis.tables import write_table
from trials.envs import get_env_spec
from tuner.store.compare_plan import run_key
from tuner.store.confirm_plan import (
    BASELINE,
    CONFIRM,
    SEARCH,
    ConfirmArm,
    ConfirmDataset,
    ConfirmPlan,
    confirm_dir,
    finished,
    planned_runs,
    run_config,
    stored_plans,
)
from tuner.store.records import TrialRecord, read_trials

TABLE_CSV = "confirmation.csv"
#: The late mean: every evaluation in this last fraction of the confirm budget's updates, averaged per run.
LATE_FRACTION = 0.1
#: The late mean's key beside the two budgets' (``row["arms"][i]["late"]``, ``vs_baseline[arm]["late"]``).
LATE = "late"
TABLE_JSON = "confirmation.json"


@dataclass
class ConfirmTable:
    rows: list[dict[str, Any]]
    """One per dataset: its arms (each with both budgets' scores) and the transfer figures."""
    csv: Path
    json: Path


def arm_scores(plan: ConfirmPlan, entry: ConfirmDataset, runs: dict[str, TrialRecord] | None = None
               ) -> dict[str, dict[str, dict[int, float]]]:
    """Arm -> budget -> seed -> final score, of the runs finished so far."""
    out: dict[str, dict[str, dict[int, float]]] = {}
    for arm, budget, seed, record in _runs(plan, entry, runs, (SEARCH, CONFIRM)):
        out.setdefault(arm.name, {}).setdefault(budget, {})[seed] = float(record.last["score"])
    return out


def _runs(plan: ConfirmPlan, entry: ConfirmDataset, runs: dict[str, TrialRecord] | None,
          budgets: tuple[str, ...]) -> Iterator[tuple[ConfirmArm, str, int, TrialRecord]]:
    """Each finished run of the dataset's arms at ``budgets``, as (arm, budget, seed, its record), arm by arm;
    ``runs`` are the finished runs by key (read from disk when None)."""
    runs = finished(plan, entry) if runs is None else runs
    for arm in entry.arms:
        for budget in budgets:
            for seed in entry.seeds:
                record = runs.get(run_key(run_config(arm, budget, seed)))
                if record is not None:
                    yield arm, budget, seed, record


def late_means(plan: ConfirmPlan, entry: ConfirmDataset, runs: dict[str, TrialRecord] | None = None,
               fraction: float = LATE_FRACTION) -> dict[str, dict[int, tuple[float, int]]]:
    """Arm -> seed -> (the mean score of the evaluations in the last ``fraction`` of the updates, how many) of
    each finished confirm-budget run: a steadier final figure than the score window where a run's evaluations
    swing (hopper's from 8 to 70 in three evaluations). Runs recorded without their history give none."""
    out: dict[str, dict[int, tuple[float, int]]] = {}
    for arm, _, seed, record in _runs(plan, entry, runs, (CONFIRM,)):
        cfg = record.trial_config()
        epochs = [int(h["epoch"]) for h in record.history]
        late = [float(h["normalized_score"]) for h, epoch in zip(record.history, epochs, strict=True)
                if epoch > (1 - fraction) * cfg.epochs and evaluated(epoch, cfg.eval_every, cfg.epochs)]
        if late:
            out.setdefault(arm.name, {})[seed] = (float(np.mean(late)), len(late))
    return out


def _tau(x: list[float], y: list[float]) -> dict[str, float | int]:
    if len(x) < 2:
        return {"tau": math.nan, "p": math.nan, "n": len(x)}
    res = stats.kendalltau(x, y)
    return {"tau": float(res.statistic), "p": float(res.pvalue), "n": len(x)}


def _on_every_seed(arm: dict[str, Any], seeds: int, budgets: tuple[str, ...]) -> bool:
    """Whether an arm of a :func:`dataset_row` has a finished run on each of its ``seeds`` at ``budgets``."""
    return all(arm[budget]["n"] == seeds for budget in budgets)


def dataset_row(plan: ConfirmPlan, entry: ConfirmDataset) -> dict[str, Any]:
    """The transfer figures of one dataset (see the module docstring)."""
    runs = finished(plan, entry)  # read from disk once for both
    scores = arm_scores(plan, entry, runs)
    late = late_means(plan, entry, runs)
    arms = []
    for arm in entry.arms:
        row: dict[str, Any] = {"arm": arm.name, "setting": arm.setting, "sweep_trial": arm.sweep_trial,
                               "sweep_score": arm.sweep_score}
        for budget in (SEARCH, CONFIRM):
            per_seed = scores.get(arm.name, {}).get(budget, {})
            mean, std = mean_std(np.array(list(per_seed.values()), dtype=float))
            row[budget] = {"mean": mean, "std": std, "n": len(per_seed),
                           "seeds": {str(s): v for s, v in per_seed.items()}}
        tail = late.get(arm.name, {})
        mean, std = mean_std(np.array([m for m, _ in tail.values()], dtype=float))
        row[LATE] = {"mean": mean, "std": std, "n": len(tail), "seeds": {str(s): m for s, (m, _) in tail.items()},
                     "evaluations": sorted({k for _, k in tail.values()})}
        arms.append(row)
    complete = [a for a in arms if _on_every_seed(a, len(entry.seeds), (SEARCH, CONFIRM))]
    out: dict[str, Any] = {
        "dataset": entry.experiment, "name": entry.name, "seeds": entry.seeds, "updates": entry.updates,
        "late_updates": round(LATE_FRACTION * entry.updates[CONFIRM]), "arms": arms,
        "kendall_search_vs_confirm": _tau([a[SEARCH]["mean"] for a in complete],
                                          [a[CONFIRM]["mean"] for a in complete]),
    }
    swept = [a for a in complete if a["sweep_score"] is not None]
    if plan.top_k is None:
        out["kendall_sweep_vs_confirm"] = _tau([a["sweep_score"] for a in swept], [a[CONFIRM]["mean"] for a in swept])
    if complete:
        winner = max(complete, key=lambda a: a[CONFIRM]["mean"])
        out["winner_at_confirm"] = winner["arm"]
        out["winner_at_search"] = max(complete, key=lambda a: a[SEARCH]["mean"])["arm"]
        # The search budget as a predictor of the confirm budget (the measures an offline estimate gets in
        # analysis.ope): Spearman with its bootstrap interval, and regret@k, what trusting its top k costs.
        out["search_ranking"] = asdict(agreement([a[CONFIRM]["mean"] for a in complete],
                                                 [a[SEARCH]["mean"] for a in complete]))
    if any(a["arm"] == BASELINE for a in arms):
        with_late = {a.name: {**scores.get(a.name, {}), LATE: {s: m for s, (m, _) in late.get(a.name, {}).items()}}
                     for a in entry.arms}
        out["vs_baseline"] = vs_baseline(with_late, [a["arm"] for a in arms if a["arm"] != BASELINE],
                                         (SEARCH, CONFIRM, LATE))
        if "best1" in out["vs_baseline"]:  # the headline figure, under the key tables stored before kept
            out["best1_vs_baseline_at_confirm"] = out["vs_baseline"]["best1"][CONFIRM]
    return out


def vs_baseline(scores: dict[str, dict[str, dict[int, float]]], arms: list[str],
                budgets: tuple[str, ...] = (SEARCH, CONFIRM)) -> dict[str, dict[str, dict[str, Any]]]:
    """Arm -> budget -> the arm minus the baseline (:func:`arm_scores` gives ``scores``; ``budgets`` may name
    :data:`LATE` too, the late means by seed), with Welch's p Holm-adjusted over ``arms`` at the confirm
    budget."""
    out = {name: {budget: _difference(scores, name, budget) for budget in budgets} for name in arms}
    _holm(out, CONFIRM)
    return out


def _difference(scores: dict[str, dict[str, dict[int, float]]], arm: str, budget: str) -> dict[str, Any]:
    """``arm`` minus the baseline at ``budget``: the difference of the means over the seeds each has finished,
    Welch's and the bootstrap's 95% intervals and Welch's two-sided p (NaN below 2 seeds per arm)."""
    b = np.array(list(scores.get(arm, {}).get(budget, {}).values()), dtype=float)
    h = np.array(list(scores.get(BASELINE, {}).get(budget, {}).values()), dtype=float)
    welch, p = welch_interval(b, h)
    boot = bootstrap_interval(b, h)
    return {"difference": float(b.mean() - h.mean()) if len(b) and len(h) else math.nan,
            "welch": [welch.low, welch.high], "p": p, "bootstrap": [boot.low, boot.high], "n": [len(b), len(h)]}


def _holm(differences: dict[str, dict[str, dict[str, Any]]], budget: str) -> None:
    """Add ``p_holm`` to each arm's difference at ``budget``: Welch's two-sided p adjusted by Holm's step-down
    rule over the arms compared with the baseline (the family-wise error of asking "does any arm differ from
    it?"). Arms without a p yet (fewer than 2 seeds) are left out of the family and get NaN."""
    ps = sorted((d[budget]["p"], arm) for arm, d in differences.items() if not math.isnan(d[budget]["p"]))
    running = 0.0
    for i, (p, arm) in enumerate(ps):
        running = max(running, min(1.0, (len(ps) - i) * p))
        differences[arm][budget]["p_holm"] = running
    for d in differences.values():
        d[budget].setdefault("p_holm", math.nan)


def _fmt(cell: dict[str, Any]) -> str:
    if not cell["n"]:
        return "-"
    std = f" ± {cell['std']:.2f}" if not math.isnan(cell["std"]) else ""
    return f"{cell['mean']:.2f}{std} (n={cell['n']})"


#: What a tau over the arms needs before it means anything.
_ARMS_NEEDED = "2 arms finished at both budgets on every seed"
#: What the sweep-score tau needs (with ``--top-k all``: arms from the sweep, finished at the confirm budget).
_SWEPT_NEEDED = "2 swept arms finished at the confirm budget on every seed"


def _tau_text(tau: dict[str, Any], needs: str = _ARMS_NEEDED, with_p: bool = False) -> str:
    """A Kendall's tau with its n (and p), or what it still needs; undefined when every score ties."""
    if tau["n"] < 2:
        return f"not yet (needs {needs}; n={tau['n']})"
    if math.isnan(tau["tau"]):
        return f"undefined (tied scores; n={tau['n']})"
    p = f", p {tau['p']:.2f}" if with_p else ""
    return f"{tau['tau']:.2f} (n={tau['n']}{p})"


def _ranking_text(r: dict[str, Any]) -> str:
    """Spearman [95% CI] and regret@1 (and @3 beyond 3 arms) of the search budget's ranking of the arms
    against their confirm-budget means."""
    regret = {int(k): v for k, v in r["regret"].items()}
    if r["n"] < 3:
        return f"not yet (needs 3 arms finished at both budgets on every seed; n={r['n']})"
    rho = ("undefined (tied scores)" if math.isnan(r["spearman"]) else
           f"{r['spearman']:.2f} [{r['spearman_low']:.2f}, {r['spearman_high']:.2f}]")
    at3 = f", regret@3 {regret[3]:.2f}" if r["n"] > 3 else ""
    return (f"Spearman {rho}, regret@1 {regret[1]:.2f}{at3} (n={r['n']}; regret@k: the best confirm-budget "
            "mean minus the best confirm-budget mean among the k arms ranked highest at the search budget)")


def _p_text(p: float) -> str:
    """A p-value to three decimals (0.046, not 0.05, beside a 0.05 bar)."""
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _difference_text(d: dict[str, Any], family: tuple[int, int] | None = None) -> str:
    """An arm minus the baseline with its Welch and bootstrap intervals, or only the difference while either
    arm has fewer than 2 seeds (no interval from one seed). With ``family`` (the arms that have a p, the arms
    compared) also Welch's p, and its Holm adjustment when several arms were compared."""
    n = f"n={d['n'][0]}/{d['n'][1]}"
    if not (d["n"][0] and d["n"][1]):
        return f"not yet (needs a finished seed of each arm; {n})"
    if min(d["n"]) < 2:
        return f"{d['difference']:+.2f} ({n}; intervals need 2 seeds per arm)"
    p = ""
    if family is not None:
        have, compared = family
        holm = d.get("p_holm", math.nan)
        over = f"{have} arms" if have == compared else f"{have} of {compared} arms so far"
        adjusted = f", Holm over {over} {_p_text(holm)}" if compared > 1 and not math.isnan(holm) else ""
        p = f" (p {_p_text(d['p'])}{adjusted})"
    return (f"{d['difference']:+.2f}, 95% CI Welch [{d['welch'][0]:.2f}, {d['welch'][1]:.2f}]{p}, bootstrap "
            f"[{d['bootstrap'][0]:.2f}, {d['bootstrap'][1]:.2f}] ({n})")


def _differences(row: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """Arm -> budget -> its difference from the baseline; a table stored before every arm was compared holds
    best1's at the confirm budget only."""
    if "vs_baseline" in row:
        return row["vs_baseline"]
    if "best1_vs_baseline_at_confirm" in row:
        return {"best1": {CONFIRM: row["best1_vs_baseline_at_confirm"]}}
    return {}


def _family(differences: dict[str, dict[str, dict[str, Any]]]) -> tuple[int, int]:
    """The arms whose confirm-budget difference has a p (the family Holm's rule adjusts over), and the arms
    compared with the baseline."""
    have = sum(1 for d in differences.values() if not math.isnan(d.get(CONFIRM, {}).get("p", math.nan)))
    return have, len(differences)


def flat_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (dataset, arm), for the CSV; an arm's difference from the baseline at each budget, with
    its intervals at the confirm budget, on the arm's row (empty on the baseline's)."""
    out = []
    for row in rows:
        differences = _differences(row)
        for arm in row["arms"]:
            d = differences.get(arm["arm"], {})
            at, search, late = d.get(CONFIRM, {}), d.get(SEARCH, {}), d.get(LATE, {})
            welch, boot = at.get("welch", [math.nan] * 2), at.get("bootstrap", [math.nan] * 2)
            out.append({"dataset": row["dataset"], "arm": arm["arm"], "sweep_trial": arm["sweep_trial"],
                        "sweep_score": arm["sweep_score"],
                        "search_updates": row["updates"][SEARCH], "search_mean": arm[SEARCH]["mean"],
                        "search_std": arm[SEARCH]["std"], "search_n": arm[SEARCH]["n"],
                        "confirm_updates": row["updates"][CONFIRM], "confirm_mean": arm[CONFIRM]["mean"],
                        "confirm_std": arm[CONFIRM]["std"], "confirm_n": arm[CONFIRM]["n"],
                        "late_updates": row.get("late_updates"), "late_mean": arm.get(LATE, {}).get("mean"),
                        "late_std": arm.get(LATE, {}).get("std"), "late_n": arm.get(LATE, {}).get("n"),
                        "late_minus_baseline": late.get("difference", math.nan),
                        "search_minus_baseline": search.get("difference", math.nan),
                        "confirm_minus_baseline": at.get("difference", math.nan),
                        "confirm_welch_low": welch[0], "confirm_welch_high": welch[1],
                        "confirm_p": at.get("p", math.nan), "confirm_p_holm": at.get("p_holm", math.nan),
                        "confirm_bootstrap_low": boot[0], "confirm_bootstrap_high": boot[1],
                        "setting": json.dumps(arm["setting"], sort_keys=True)})
    return out


def format_confirmation(rows: list[dict[str, Any]]) -> str:
    """The table as Markdown: a row per arm, then each dataset's transfer figures."""
    lines = []
    for row in rows:
        u = row["updates"]
        late = late_header(row)
        lines += [f"{row['dataset']} (seeds {', '.join(map(str, row['seeds']))}):", "",
                  f"| arm | sweep score | {u[SEARCH]:,} updates | {u[CONFIRM]:,} updates |"
                  + (f" {late} |" if late else ""), "|---|---|---|---|" + ("---|" if late else "")]
        for arm in row["arms"]:
            sweep = f"{arm['sweep_score']:.2f}" if arm["sweep_score"] is not None else "-"
            lines.append(f"| {arm['arm']} | {sweep} | {_fmt(arm[SEARCH])} | {_fmt(arm[CONFIRM])} |"
                         + (f" {_fmt(arm[LATE])} |" if late else ""))
        tau = row["kendall_search_vs_confirm"]
        lines += ["", f"Kendall's tau, arms at {u[SEARCH]:,} vs {u[CONFIRM]:,} updates: {_tau_text(tau, with_p=True)}"]
        if "kendall_sweep_vs_confirm" in row:
            t = row["kendall_sweep_vs_confirm"]
            lines.append(f"Kendall's tau, sweep score vs {u[CONFIRM]:,} updates: {_tau_text(t, _SWEPT_NEEDED, True)}")
        if "winner_at_confirm" in row:
            lines.append(f"Best at {u[SEARCH]:,}: {row['winner_at_search']}; "
                         f"at {u[CONFIRM]:,}: {row['winner_at_confirm']}")
            if "search_ranking" in row:  # tables stored before it was measured lack it
                lines.append(f"Ranking the arms by their {u[SEARCH]:,}-update scores, judged at {u[CONFIRM]:,}: "
                             f"{_ranking_text(row['search_ranking'])}")
        differences = _differences(row)
        family = _family(differences)
        for arm, d in differences.items():
            late = f"; by the late mean: {_difference_text(d[LATE])}" if LATE in d else ""
            search = f"; at {u[SEARCH]:,}: {_difference_text(d[SEARCH])}" if SEARCH in d else ""
            lines.append(f"{arm} - baseline at {u[CONFIRM]:,} updates: {_difference_text(d[CONFIRM], family)}"
                         f"{late}{search}")
        lines.append("")
    return "\n".join(lines)


def late_header(row: dict[str, Any]) -> str:
    """The late-mean column's heading (``mean of the last 20,000 updates (10 evaluations)``), or "" for a
    table stored before it was measured."""
    if "late_updates" not in row:
        return ""
    counts = sorted({k for a in row["arms"] for k in a[LATE]["evaluations"]})
    evaluations = f" ({'/'.join(map(str, counts))} evaluations)" if counts else ""
    return f"mean of the last {row['late_updates']:,} updates{evaluations}"


def evaluated(epoch: int, eval_every: int, epochs: int) -> bool:
    """Whether the trainer evaluated at ``epoch`` (``trials.run.mopo``'s rule; reports between evaluations
    repeat the last one's score)."""
    return epoch % eval_every == 0 or epoch == epochs


def curves(plan: ConfirmPlan, entry: ConfirmDataset, runs: dict[str, TrialRecord] | None = None) -> pd.DataFrame:
    """Every evaluation of every run of the confirmation so far (finished runs, and the ones in progress in
    its own folder): columns ``arm``, ``budget``, ``seed``, ``updates`` (SAC updates when evaluated),
    ``score`` (that evaluation's D4RL-normalised score), ``running`` (the run has not finished)."""
    labels = {run_key(config): (arm, budget, seed) for arm, budget, seed, config in planned_runs(entry)}
    records = dict(finished(plan, entry) if runs is None else runs)
    ended = set(records)
    for run_dir in sorted((confirm_dir(Path(plan.sweep), plan.source, plan.top_k) / entry.experiment).glob("run-*")):
        for record in read_trials(run_dir):
            if record.history:
                records.setdefault(run_key(record.trial_config().to_dict()), record)
    rows = []
    for key, record in records.items():
        if key not in labels:
            continue
        arm, budget, seed = labels[key]
        cfg = record.trial_config()
        rows += [{"arm": arm, "budget": budget, "seed": seed, "updates": int(h["epoch"]) * cfg.steps_per_epoch,
                  "score": float(h["normalized_score"]), "running": key not in ended} for h in record.history
                 if evaluated(int(h["epoch"]), cfg.eval_every, cfg.epochs)]
    return pd.DataFrame(rows, columns=["arm", "budget", "seed", "updates", "score", "running"])


def transfer_points(row: dict[str, Any]) -> pd.DataFrame:
    """The arms of a :func:`dataset_row` finished at both budgets on every seed (those its tau ranks): columns
    ``arm``, ``search`` and ``confirm`` (mean over the seeds)."""
    points = [{"arm": a["arm"], SEARCH: a[SEARCH]["mean"], CONFIRM: a[CONFIRM]["mean"]} for a in row["arms"]
              if _on_every_seed(a, len(row["seeds"]), (SEARCH, CONFIRM))]
    return pd.DataFrame(points, columns=["arm", SEARCH, CONFIRM])


def ranked_at_search(row: dict[str, Any]) -> list[str]:
    """The arms of a :func:`dataset_row` scored at the search budget on every seed, best first."""
    scored = [a for a in row["arms"] if _on_every_seed(a, len(row["seeds"]), (SEARCH,))]
    return [a["arm"] for a in sorted(scored, key=lambda a: -a[SEARCH]["mean"])]


def tau_caption(row: dict[str, Any]) -> str:
    """Kendall's tau of the arms between the two budgets, with its n and p (or what it still needs)."""
    return f"Kendall's tau {_tau_text(row['kendall_search_vs_confirm'], with_p=True)}"


def transfer_summary(row: dict[str, Any]) -> str:
    """One dataset's transfer figures in a sentence: the tau(s), the winners, each arm against the baseline."""
    u = row["updates"]
    tau = row["kendall_search_vs_confirm"]
    parts = [f"Kendall's tau of the arms between {u[SEARCH]:,} and {u[CONFIRM]:,} updates {_tau_text(tau)}"]
    if "kendall_sweep_vs_confirm" in row:
        t = row["kendall_sweep_vs_confirm"]
        parts.append(f"sweep score against {u[CONFIRM]:,} updates {_tau_text(t, _SWEPT_NEEDED)}")
    if "winner_at_confirm" in row:
        parts.append(f"best at {u[SEARCH]:,}: {row['winner_at_search']}; at {u[CONFIRM]:,}: {row['winner_at_confirm']}")
        if "search_ranking" in row:
            parts.append(f"the {u[SEARCH]:,}-update ranking judged at {u[CONFIRM]:,}: "
                         f"{_ranking_text(row['search_ranking'])}")
    differences = _differences(row)
    for arm, both in differences.items():
        d = both[CONFIRM]
        if d["n"][0] and d["n"][1]:
            parts.append(f"{arm} - baseline at {u[CONFIRM]:,}: {_difference_text(d, _family(differences))}")
    return "; ".join(parts) + "."


def cell(budget: dict[str, Any]) -> str:
    """``mean ± std (n=3)`` of one arm at one budget, ``-`` before its first run."""
    return _fmt(budget)


def final_episodes(plan: ConfirmPlan, entry: ConfirmDataset, budget: str = CONFIRM,
                   runs: dict[str, TrialRecord] | None = None) -> dict[str, np.ndarray]:
    """Arm -> the D4RL-normalised episode scores of its final policies at ``budget``: every episode of the
    last ``score_window`` evaluations (the ones its score averages) of each seed's finished run. Runs made
    before episodes were recorded contribute none."""
    spec = get_env_spec(entry.name.split("-", 1)[0])
    scores: dict[str, list[float]] = {}
    for arm, _, seed, record in _runs(plan, entry, runs, (budget,)):
        scores.setdefault(arm.name, []).extend(final_episode_scores(record, [seed], spec))
    return {arm: np.array(values) for arm, values in scores.items() if values}


def write_confirmation(plan: ConfirmPlan) -> ConfirmTable:
    """Tabulate the runs finished so far; write ``confirmation.csv``/``.json`` beside them."""
    folder = confirm_dir(Path(plan.sweep), plan.source, plan.top_k)
    rows = [dataset_row(plan, entry) for entry in plan.datasets]
    csv, js = folder / TABLE_CSV, folder / TABLE_JSON
    if not write_table(js, csv, rows, pd.DataFrame(flat_rows(rows)).to_csv(index=False), rows, _measure,
                       lambda stored: stored):
        rows = json.loads(js.read_text())
    return ConfirmTable(rows=rows, csv=csv, json=js)


#: A sweep's confirmations, each with its table (:func:`confirmations`).
Confirmations = list[tuple[ConfirmPlan, ConfirmTable]]


def confirmations(sweep_dir: Path) -> Confirmations:
    """Each confirmation stored in a sweep folder with its table (:func:`write_confirmation`), computed once
    for a report's front table and its figures."""
    return [(plan, write_confirmation(plan)) for plan in stored_plans(sweep_dir)]


def _measure(row: dict[str, Any]) -> tuple[str, int]:
    """A confirmation row's identity (dataset, budgets, arms and their settings) and its finished runs."""
    arms = [[a["arm"], a["setting"]] for a in row["arms"]]
    identity = json.dumps([row["dataset"], row["updates"], row["seeds"], arms], sort_keys=True, default=str)
    return identity, sum(a[b]["n"] for a in row["arms"] for b in (SEARCH, CONFIRM))
