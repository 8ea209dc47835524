"""Figures of sweeps and calibrations, as PNG files (matplotlib, Agg backend: no display needed).

Every function takes tables from :mod:`analysis.results` / :mod:`analysis.calibration`, writes one PNG and
returns its path, or None when there is nothing to draw (e.g. no trial has a score yet).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; must precede pyplot

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import FuncFormatter, MaxNLocator  # noqa: E402

from analysis.importance import is_numeric  # noqa: E402
from analysis.results import best_so_far, completed  # noqa: E402
from trials.files import atomic_write
from tuner.store.confirm_plan import BASELINE

DPI = 100
_JITTER = np.random.default_rng(0)  # fixed: the same tables give the same pictures


def _save(fig: plt.Figure, path: Path) -> Path:
    """Write the figure to a temporary sibling, then rename it over ``path`` (complete or absent)."""
    try:
        return atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=DPI, bbox_inches="tight"))
    finally:
        plt.close(fig)


def _label(sweep: str, searcher: str | None = None, dataset: str | None = None, datasets: int = 1) -> str:
    text = f"{sweep} ({searcher})" if searcher else sweep
    return f"{text} / {dataset}" if dataset and datasets > 1 else text


def plot_best_so_far(trials: pd.DataFrame, path: Path) -> Path | None:
    """Best final score so far against trial number (creation order): one panel per dataset, one line per
    sweep, so searchers run on the same data (Ax vs random) compare at equal trial counts."""
    curve = best_so_far(trials)
    if curve["best"].notna().sum() == 0:
        return None
    searchers = trials.groupby("sweep")["searcher"].first().to_dict()
    datasets = list(dict.fromkeys(curve["dataset"]))
    fig, axes = plt.subplots(1, len(datasets), figsize=(5.5 * len(datasets), 3.8), squeeze=False)
    for ax, dataset in zip(axes[0], datasets, strict=True):
        for sweep, group in curve[curve["dataset"] == dataset].groupby("sweep", sort=False):
            line = ax.step(group["trial"], group["best"], where="post", label=_label(sweep, searchers.get(sweep)))
            ax.scatter(group["trial"], group["score"], s=12, alpha=0.4, color=line[0].get_color())
        ax.set(title=dataset, xlabel="trial number", ylabel="best normalised score so far")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, path)


def _strip(ax: plt.Axes, categories: list[str], values: pd.Series, score: pd.Series, **kw: object) -> None:
    codes = np.array([categories.index(str(v)) for v in values])
    ax.scatter(codes + _JITTER.uniform(-0.15, 0.15, len(codes)), score, **kw)
    ax.set_xticks(range(len(categories)), categories, rotation=20, fontsize=8)


def plot_score_vs_params(trials: pd.DataFrame, params: list[str], log_scale: set[str], path: Path) -> Path | None:
    """Final score against each searched parameter (scatter for numbers, jittered strip for categories)."""
    done = completed(trials)
    params = [p for p in params if p in done.columns and done[p].notna().any()]
    if done.empty or not params:
        return None
    cols = min(3, len(params))
    rows = -(-len(params) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.4 * rows), squeeze=False)
    groups = list(done.groupby(["sweep", "dataset"], sort=False))
    for ax, param in zip(axes.flat, params, strict=False):
        present = done[done[param].notna()]
        numeric = is_numeric(present[param])
        categories = sorted({str(v) for v in present[param]})
        for (sweep, dataset), group in groups:
            group = group[group[param].notna()]
            label = _label(sweep, dataset=dataset, datasets=done["dataset"].nunique())
            if numeric:
                ax.scatter(group[param].astype(float), group["score"], s=18, alpha=0.8, label=label)
            else:
                _strip(ax, categories, group[param], group["score"], s=18, alpha=0.8, label=label)
        if numeric and param in log_scale:
            ax.set_xscale("log")
        ax.set(xlabel=param, ylabel="final score")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(params):]:
        ax.set_visible(False)
    if len(groups) > 1:
        axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def plot_score_by_penalty(trials: pd.DataFrame, path: Path, key: str = "penalty") -> Path | None:
    """Final score by penalty heuristic: a box per heuristic with every trial drawn on it, a panel per
    dataset."""
    done = completed(trials)
    if done.empty or key not in done.columns or done[key].isna().all():
        return None
    done = done[done[key].notna()]
    categories = sorted({str(v) for v in done[key]})
    datasets = list(dict.fromkeys(done["dataset"]))
    width = max(4.5, 1.4 * len(categories))
    fig, axes = plt.subplots(1, len(datasets), figsize=(width * len(datasets), 3.8), squeeze=False)
    for ax, dataset in zip(axes[0], datasets, strict=True):
        rows = done[done["dataset"] == dataset]
        data = [rows.loc[rows[key].astype(str) == c, "score"].astype(float).to_numpy() for c in categories]
        ax.boxplot(data, positions=range(len(categories)), widths=0.5, showfliers=False)
        _strip(ax, categories, rows[key], rows["score"].astype(float), s=16, alpha=0.7, color="tab:blue", zorder=3)
        ax.set(xlabel=key, ylabel="final score", title=f"{dataset}: score by penalty heuristic")
        ax.grid(alpha=0.3, axis="y")
    return _save(fig, path)


def _axis_values(values: pd.Series, log: bool) -> tuple[np.ndarray, list[float], list[str]]:
    """Values scaled to [0, 1] for one parallel-coordinates axis, with tick positions and labels."""
    present = values.dropna()
    if is_numeric(present):
        x = values.astype(float).to_numpy()
        x = np.log10(x) if log else x
        lo, hi = np.nanmin(x), np.nanmax(x)
        span = hi - lo if hi > lo else 1.0
        ticks = np.linspace(lo, hi if hi > lo else lo + 1, 3)
        labels = [f"{10 ** t:.3g}" if log else f"{t:.3g}" for t in ticks]
        return (x - lo) / span, list((ticks - lo) / span), labels
    categories = sorted({str(v) for v in present})
    pos = {c: i / max(len(categories) - 1, 1) for i, c in enumerate(categories)}
    scaled = np.array([pos[str(v)] if pd.notna(v) else np.nan for v in values])
    return scaled, list(pos.values()), categories


def plot_parallel(trials: pd.DataFrame, params: list[str], log_scale: set[str], path: Path) -> Path | None:
    """Parallel coordinates: each trial a line across its searched values and its score, coloured by score
    (a parameter absent on a trial's branch leaves a gap)."""
    done = completed(trials)
    params = [p for p in params if p in done.columns and done[p].notna().any()]
    if len(done) < 2 or not params:
        return None
    axes_keys = [*params, "score"]
    scaled = {k: _axis_values(done[k], k in log_scale) for k in axes_keys}
    score = done["score"].astype(float).to_numpy()
    norm = plt.Normalize(np.nanmin(score), np.nanmax(score) if np.nanmax(score) > np.nanmin(score) else
                         np.nanmin(score) + 1)
    cmap = plt.get_cmap("viridis")
    fig, ax = plt.subplots(figsize=(1.9 * len(axes_keys) + 2, 4.2))
    xs = np.arange(len(axes_keys))
    order = np.argsort(score)  # best drawn last, on top
    for i in order:
        ys = np.array([scaled[k][0][i] for k in axes_keys])
        ax.plot(xs, ys, color=cmap(norm(score[i])), alpha=0.8, lw=1.4)
    for x, key in zip(xs, axes_keys, strict=True):
        ax.axvline(x, color="0.6", lw=0.8)
        for pos, text in zip(scaled[key][1], scaled[key][2], strict=True):
            ax.text(x + 0.03, pos, text, fontsize=7, va="center")
    ax.set_xticks(xs, axes_keys, fontsize=9)
    ax.set_yticks([])
    ax.set_ylim(-0.05, 1.05)
    ax.set_title("parallel coordinates (colour: final score)")
    fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, label="final score")
    return _save(fig, path)


def plot_importance(table: pd.DataFrame, path: Path) -> Path | None:
    """Bars of per-parameter importance (|Spearman rho| for numbers, eta^2 for categories), a panel per
    dataset (scores of different datasets are not comparable, so neither are their importances)."""
    table = table[table["importance"].notna()]
    if table.empty:
        return None
    datasets = list(dict.fromkeys(table["dataset"]))
    height = 0.5 * table.groupby("dataset").size().max() + 1.4
    fig, axes = plt.subplots(1, len(datasets), figsize=(5.5 * len(datasets), height), squeeze=False)
    for ax, dataset in zip(axes[0], datasets, strict=True):
        rows = table[table["dataset"] == dataset]
        labels = [f"{p}  ({m})" for p, m in zip(rows["parameter"], rows["measure"], strict=True)]
        ax.barh(labels[::-1], rows["importance"].to_numpy()[::-1], color="tab:blue")
        ax.set(xlim=(0, 1), xlabel="importance (0 = none, 1 = explains the score)", title=dataset)
        ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    return _save(fig, path)


def plot_learning_curves(history: pd.DataFrame, path: Path) -> Path | None:
    """Score per epoch of every trial (one panel per dataset)."""
    if history.empty or "score" not in history.columns:
        return None
    datasets = list(dict.fromkeys(history["dataset"]))
    fig, axes = plt.subplots(1, len(datasets), figsize=(5.5 * len(datasets), 3.6), squeeze=False)
    for ax, dataset in zip(axes[0], datasets, strict=True):
        for _, group in history[history["dataset"] == dataset].groupby(["sweep", "trial_id"], sort=False):
            ax.plot(group["epoch"], group["score"], alpha=0.5, lw=1)
        ax.set(title=dataset, xlabel="epoch", ylabel="normalised score")
        ax.grid(alpha=0.3)
    return _save(fig, path)


def seed_curve(part: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """One arm's evaluations at one budget (rows of ``analysis.confirm.curves``) across its seeds: per
    evaluation point the ``mean``, ``min``, ``max`` and ``count`` of seeds, ``complete`` where every seed has
    reported it; and the legend's note (``3 seeds``, or ``3 seeds, 1 running, at 92,000 updates`` while a
    run is in progress: past that point the mean is over the seeds further along)."""
    stats = part.groupby("updates")["score"].agg(["mean", "min", "max", "count"]).reset_index()
    seeds = part["seed"].nunique()
    stats["complete"] = stats["count"] == seeds
    note = f"{seeds} seed{'s' if seeds > 1 else ''}"
    going = part[part["running"].astype(bool)] if "running" in part else part.iloc[:0]
    if not going.empty:
        reach = int(going.groupby("seed")["updates"].max().min())
        note += f", {going['seed'].nunique()} running, at {reach:,} updates"
    return stats, note


#: Beyond this many arms a confirmation's curves are coloured by the arm's rank at the search budget, with a
#: colour bar, instead of one legend entry per arm (``--top-k all`` confirms every trial of a sweep).
LEGEND_ARMS = 6
#: The colour scale of arms by rank (reversed viridis: rank 1 bright yellow, the last dark purple).
RANK_COLOURS = "viridis_r"
#: The colour of an arm without a rank among arms coloured by rank.
UNRANKED = "grey"


def arm_colours(arms: list[str], ranked: list[str] | None = None) -> tuple[dict[str, Any], int]:
    """Each arm's line colour, and how many arms are coloured by rank (0: none). Up to :data:`LEGEND_ARMS`
    arms, or without a ranking, the colour cycle in order; beyond, a colour scale (:data:`RANK_COLOURS`: the
    best bright) by the arm's place in ``ranked`` (best first), the hand-tuned arm black and arms ``ranked``
    lacks (not scored at the search budget yet) grey."""
    ranks = [a for a in ranked or [] if a in arms and a != BASELINE]
    if len(arms) <= LEGEND_ARMS or not ranks:
        cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        return {a: cycle[i % len(cycle)] for i, a in enumerate(arms)}, 0
    cmap = plt.get_cmap(RANK_COLOURS)
    colours: dict[str, Any] = {a: UNRANKED for a in arms}
    colours.update({a: cmap(i / max(len(ranks) - 1, 1)) for i, a in enumerate(ranks)})
    if BASELINE in colours:
        colours[BASELINE] = "black"
    return colours, len(ranks)


def plot_confirm_curves(curves: pd.DataFrame, search_updates: int, title: str, path: Path,
                        ranked: list[str] | None = None) -> Path | None:
    """Each arm's evaluations against SAC updates, mean over seeds with a min-max band: solid at the
    confirm budget, dashed at the search budget (a dotted line marks where the search stopped). Where a run
    is still in progress the line goes on faded past its last evaluation, over the seeds further along
    (:func:`seed_curve`). With more than :data:`LEGEND_ARMS` arms, ``ranked`` (the arms best first at the
    search budget) colours each line by that rank, so a reader sees whether the colours stay in order."""
    if curves.empty:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    arms = list(dict.fromkeys(curves["arm"]))
    colour_of, ranks = arm_colours(arms, ranked)
    by_rank = ranks > 0
    for arm, by_arm in curves.groupby("arm", sort=False):
        colour = colour_of[str(arm)]
        for budget, style in (("confirm", "-"), ("search", "--")):
            part = by_arm[by_arm["budget"] == budget]
            if part.empty:
                continue
            stats, note = seed_curve(part)
            label = None if by_rank else f"{arm} ({budget}, {note})"
            full = stats[stats["complete"]]
            if not full.empty:
                ax.plot(full["updates"], full["mean"], style, color=colour, lw=1.0 if by_rank else 1.4, label=label)
                label = None
                if part["seed"].nunique() > 1:
                    ax.fill_between(full["updates"], full["min"], full["max"], color=colour, alpha=0.12, lw=0)
            rest = stats[stats["updates"] >= (full["updates"].max() if not full.empty else 0)]
            if len(rest) > 1 or label is not None:
                ax.plot(rest["updates"], rest["mean"], style, color=colour, lw=1.0, alpha=0.4, label=label)
    ax.axvline(search_updates, color="grey", ls=":", lw=1)
    ax.xaxis.set_major_locator(MaxNLocator(6))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:,.0f}"))
    ax.set(title=title, xlabel="SAC updates", ylabel="normalised score (each evaluation)")
    ax.grid(alpha=0.3)
    if by_rank:
        bar = fig.colorbar(plt.cm.ScalarMappable(cmap=RANK_COLOURS, norm=plt.Normalize(1, ranks)), ax=ax)
        bar.set_label("rank at the search budget (1 = best)")
        running = curves.loc[curves["running"].astype(bool), "arm"].nunique() if "running" in curves else 0
        notes = [f"{len(arms)} arms, {running} running"]
        if BASELINE in arms:
            notes.append(f"{BASELINE} black")
        unranked = len(arms) - ranks - (BASELINE in arms)
        if unranked:
            notes.append(f"{unranked} not ranked yet ({UNRANKED})")
        notes.append("solid: confirm budget, dashed: search budget")
        ax.text(0.01, 0.98, "; ".join(notes), transform=ax.transAxes, fontsize=7, va="top")
    else:
        ax.legend(fontsize=7, ncol=2)
    return _save(fig, path)


def plot_transfer(arms: pd.DataFrame, updates: tuple[int, int], title: str, path: Path) -> Path | None:
    """Each arm's mean score at the search budget (x) against its mean at the confirm budget (y), on the same
    seeds (``arms``: columns ``arm``, ``search``, ``confirm``, rows of the arms finished at both), each point
    named; the hand-tuned arm (:data:`~tuner.store.confirm_plan.BASELINE`) drawn apart. If the search budget
    ranked the arms as the confirm budget does, the points rise from left to right (``title`` carries the
    Kendall's tau)."""
    if len(arms) < 2:
        return None
    fig, ax = plt.subplots(figsize=(6.0, 4.4))
    tuned = arms["arm"] == BASELINE
    ax.scatter(arms.loc[~tuned, "search"], arms.loc[~tuned, "confirm"], s=22, label="searched configuration")
    if tuned.any():
        ax.scatter(arms.loc[tuned, "search"], arms.loc[tuned, "confirm"], marker="s", s=30, color="black",
                   label="hand-tuned")
    for _, row in arms.iterrows():
        name = str(row["arm"])
        short = name.split("-")[1] if name.startswith("trial-") else name  # trial-0008-04259d47 -> 0008
        ax.annotate(short, (row["search"], row["confirm"]), fontsize=6, xytext=(3, 2), textcoords="offset points")
    ax.set(title=title, xlabel=f"score at {updates[0]:,} updates (search budget)",
           ylabel=f"score at {updates[1]:,} updates (confirm budget)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_online_budget(curve: pd.DataFrame, true_scores: dict[str, float], baseline: float | None, title: str,
                       path: Path, marks: dict[str, float] | None = None) -> Path | None:
    """The UCB bandit's expected true score against online episodes spent (``analysis.online_budget``),
    with a 95% band over repeats, each candidate's true score, the hand-tuned baseline's, and ``marks``
    (label -> true score of a choice made with no episode, e.g. an offline estimator's top trial)."""
    if curve.empty:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    ax.plot(curve["pulls"], curve["expected"], lw=1.6, label="UCB choice (expected true score)")
    ax.fill_between(curve["pulls"], curve["low"], curve["high"], alpha=0.15, lw=0)
    for name, score in true_scores.items():
        ax.axhline(score, color="grey", lw=0.8, ls=":")
        ax.text(curve["pulls"].iloc[-1], score, f" {name}", fontsize=7, va="center")
    if baseline is not None:
        ax.axhline(baseline, color="black", lw=1, ls="--", label="hand-tuned baseline")
    for (label, score), colour in zip((marks or {}).items(), ("tab:red", "tab:green", "tab:purple"), strict=False):
        ax.axhline(score, color=colour, lw=1.2, ls="-.", label=label)
    ax.set(title=title, xlabel="online episodes spent choosing", ylabel="normalised score of the choice")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_estimates(rows: list[dict[str, Any]], estimators: dict[str, str], title: str, path: Path,
                   data_best: float | None = None) -> Path | None:
    """Each offline estimate of the trials' final policies against their simulator score, a panel per
    estimator (``estimators``: key -> the panel's label, e.g. its Spearman); ``data_best``, the largest
    discounted return of the dataset's own episodes, as a dashed line (to its right the estimate extrapolates)."""
    if not rows or not estimators:
        return None
    fig, axes = plt.subplots(1, len(estimators), figsize=(4.2 * len(estimators), 3.6), squeeze=False)
    score = np.array([float(r["score"]) for r in rows])
    for ax, (key, label) in zip(axes[0], estimators.items(), strict=True):
        value = np.array([float(r[key]) for r in rows])
        ax.scatter(value, score, s=18, alpha=0.8)
        if data_best is not None:
            ax.axvline(data_best, color="grey", lw=1, ls="--", label=f"data's best episode ({data_best:.3g})")
            ax.legend(fontsize=7)
        ax.set(xlabel=f"{key} estimate (discounted return)", ylabel="simulator score (normalised)", title=label)
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def plot_calibration_scatter(heuristic: np.ndarray, error: np.ndarray, step: np.ndarray, horizons: list[int],
                             name: str, stats: pd.DataFrame, path: Path) -> Path | None:
    """One heuristic against the true model error, a colour per horizon, its rank correlation in the
    legend; log axes when the values span decades."""
    fig, ax = plt.subplots(figsize=(5.2, 4.0))
    drawn = False
    for k in horizons:
        mask = (step == k) & np.isfinite(heuristic) & np.isfinite(error)
        if not mask.any():
            continue
        row = stats[(stats["horizon"] == k) & (stats["heuristic"] == name)]
        rho = float(row["spearman"].iloc[0]) if len(row) else float("nan")
        ax.scatter(heuristic[mask], error[mask], s=8, alpha=0.5, label=f"k={k} (Spearman {rho:.2f}, n={mask.sum()})")
        drawn = True
    if not drawn:
        plt.close(fig)
        return None
    for axis, values in (("x", heuristic), ("y", error)):
        positive = values[np.isfinite(values) & (values > 0)]
        if len(positive) and positive.min() > 0 and positive.max() / positive.min() > 100 and (values > 0).all():
            getattr(ax, f"set_{axis}scale")("log")
    ax.set(xlabel=f"{name} u(s, a)", ylabel="true model error ||mean prediction - s'||", title=name)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)
