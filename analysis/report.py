"""The report of one or more sweeps: ``report.html`` (self-contained) and ``report.md`` (its twin).

Sections (HTML anchors): ``front`` (when a comparison exists: the result per dataset, see
``analysis.front``), ``summary`` (datasets, trials, searcher, budget), ``best`` (the best
configuration of each sweep and dataset, with the train-ready YAML ``tuner.store.export.export_best`` wrote),
``comparison`` (best found vs hand-tuned, if ``mbrl-tune compare`` results are cached in the sweep),
``confirm`` (learning curves and the online budget of ``mbrl-tune confirm``), ``offline`` (offline estimates
against the simulator score: ``mbrl-tune estimate`` or an ``--objective fqe|model`` sweep),
``calibration`` (if ``mbrl-tune calibrate --out <sweep>/calibration`` ran), ``plots`` (best so far per
trial, learning curves, score vs each searched parameter, score by penalty, parallel coordinates),
``importance`` (per-parameter importance) and ``trials`` (every trial). Figures are PNG files in
``<out>/figures/``; the HTML also embeds them, so it can be moved alone.
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from analysis import plots
from analysis.calibration import read_calibration
from analysis.compare import sources_compared, write_comparison
from analysis.confirm import (
    Confirmations,
    confirmations,
    curves,
    final_episodes,
    ranked_at_search,
    tau_caption,
    transfer_points,
)
from analysis.document import Code, Image, Paragraph, Section, Table, render_html, render_markdown
from analysis.front import front_section
from analysis.importance import importance
from analysis.online_budget import ucb_curve
from analysis.ope import (
    AGREEMENT_HEADER,
    AGREEMENT_TEXT,
    SweepEstimates,
    agreement_row,
    offline_picks,
    sweep_estimates,
    trial_episodes,
)
from analysis.results import COMPLETED, SweepResults, load_sweeps
from trials.files import atomic_write_text
from tuner.store.confirm_plan import BASELINE, finished
from tuner.store.spec import SweepSpec

HTML_FILE = "report.html"
MD_FILE = "report.md"
FIGURES = "figures"
#: Trials listed in the trials table (best first).
MAX_TRIAL_ROWS = 200


@dataclass
class ReportFiles:
    html: Path
    markdown: Path
    figures: list[Path]


def _f(value: Any, digits: int = 3) -> str:
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.{digits}g}"
    return "-" if value is None else str(value)


def _pm(mean: float, std: float) -> str:
    if math.isnan(mean):
        return "-"
    return f"{mean:.2f} ± {std:.2f}" if not math.isnan(std) else f"{mean:.2f}"


def _summary(res: SweepResults) -> Section:
    rows = []
    for info in res.sweeps:
        mine = res.trials[res.trials["sweep"] == info.name]
        done = mine[mine["status"].isin(COMPLETED)]
        base = info.base
        budget = (f"{base.get('epochs', '?')} epochs x {base.get('steps_per_epoch', '?')} updates, "
                  f"{base.get('eval_episodes', '?')} eval episodes")
        rows.append([info.name, info.searcher, ", ".join(Path(d).stem for d in info.datasets),
                     f"{len(done)}/{info.trials * len(info.datasets)}",
                     str((mine["status"] == "diverged").sum()), str((mine["status"] == "error").sum()),
                     " ".join(str(s) for s in info.seeds), str(info.num_init_trials) if info.searcher == "ax" else "-",
                     info.early_stop, budget,
                     f"{mine['wall_s'].sum() / 60:.1f}", _f(done["score"].max() if len(done) else math.nan)])
    header = ["sweep", "searcher", "datasets", "completed / target", "diverged", "errors", "seeds",
              "init trials", "early stop", "budget per trial", "trial minutes", "best score"]
    text = ("Scores are D4RL-normalised returns of the final evaluation (mean over a configuration's seeds). "
            "Trial minutes sum the trials' own wall-clock (Tune's time_this_iter_s), not the sweep's elapsed time.")
    return Section("summary", "Sweep summary", [Paragraph(text), Table(header, rows)])


def _best(res: SweepResults, best_configs: dict[tuple[str, str], Path]) -> Section:
    blocks: list[Any] = []
    done = res.trials[res.trials["status"].isin(COMPLETED)]
    metric = {info.name: info.metric for info in res.sweeps}
    for (sweep, dataset), group in done.groupby(["sweep", "dataset"], sort=False):
        # The sweep's best by its objective: the trial export_best wrote the config of (below).
        top = group.sort_values("objective", ascending=False).iloc[0]
        seeds = [c for c in group.columns if c.startswith("score_seed") and pd.notna(top[c])]
        values = ", ".join(f"{p}={_f(top[p], 4)}" for p in res.params if p in top and pd.notna(top[p]))
        by = "" if metric[sweep] == "score" else f" (best by {metric[sweep]} {top['objective']:.4g})"
        blocks.append(Paragraph(f"{sweep} / {dataset}{by}: trial {top['trial']}, score "
                                f"{top['score']:.2f} (" + ", ".join(f"{c.removeprefix('score_')} {top[c]:.2f}"
                                                                   for c in seeds) + f"); {values}"))
        path = best_configs.get((sweep, dataset))
        if path is not None and path.is_file():
            blocks.append(Paragraph(f"Train-ready config ({path.name}; run it with mbrl-tune train --config "
                                    f"{path.name}):"))
            blocks.append(Code(path.read_text(), "yaml"))
    if not blocks:
        blocks.append(Paragraph("No completed trial yet."))
    return Section("best", "Best configurations", blocks)


def _comparison(res: SweepResults) -> Section:
    blocks: list[Any] = [Paragraph(
        "The sweep's best configuration re-run on fresh seeds it was not selected on, beside the published "
        "hand-tuned setting (as published, not projected into the search space) on the same fresh seeds, "
        "same budget. Difference = best - baseline with 95% confidence intervals (Welch t; percentile "
        "bootstrap). 'In-sweep' is the best's score on the seeds it was selected on (optimistic).")]
    found = False
    for info in res.sweeps:
        for source in sources_compared(info.root):
            out = write_comparison(info.root, source)
            if out is None or not out.rows:
                continue
            found = True
            header = ["sweep", "dataset", "baseline (fresh)", "best found (fresh)", "difference", "95% CI (Welch)",
                      "95% CI (bootstrap)", "baseline (sweep seeds)", "best in-sweep"]
            rows = [[info.name, f"{r['dataset']} ({source})", _pm(r["baseline_mean"], r["baseline_std"]) +
                     f" n={r['n_baseline']}", _pm(r["best_mean"], r["best_std"]) + f" n={r['n_best']}",
                     _f(r["diff"]), f"[{_f(r['diff_ci_low'])}, {_f(r['diff_ci_high'])}]",
                     f"[{_f(r['diff_boot_low'])}, {_f(r['diff_boot_high'])}]",
                     _pm(r["baseline_sweep_seeds_mean"], r["baseline_sweep_seeds_std"]), _f(r["best_sweep_score"])]
                    for r in out.rows]
            blocks.append(Table(header, rows))
            for r in out.rows:
                blocks.append(Paragraph(f"Configurations, {info.name} / {r['dataset']} "
                                        f"(fresh seeds {r['fresh_seeds']}):"))
                blocks.append(Table(["key", f"hand-tuned ({source})", "best found"],
                                    [[k, _f(r["baseline_config"][k], 4), _f(r["best_config"][k], 4)]
                                     for k in r["baseline_config"]]))
    if not found:
        blocks.append(Paragraph("No comparison results cached: run mbrl-tune compare SWEEP_DIR first."))
    return Section("comparison", "Best found vs hand-tuned baselines", blocks)


#: Arms finished at both budgets before the report draws their transfer scatter (fewer show no ranking).
TRANSFER_ARMS = 3
TRANSFER_TEXT = (
    "Each arm's mean score at the search budget against its mean at the confirm budget, on the same seeds: "
    "where the search budget ranks the arms as the larger budget does, the points rise from left to right "
    "(Kendall's tau in the title; the arms still running at the confirm budget are not drawn).")


def _confirmation(res: SweepResults, figures: Path, confirmed: dict[str, Confirmations]
                  ) -> tuple[Section | None, list[Path]]:
    """Each confirmation's figures per dataset: the learning curves (both budgets on one axis of updates),
    the transfer scatter and the online budget; ``confirmed``: each sweep's confirmations with the tables
    the front section prints (:func:`analysis.confirm.confirmations`)."""
    blocks: list[Any] = [Paragraph(
        "Each arm's evaluations against SAC updates (mean over seeds, band from the lowest to the highest seed): "
        "solid at the confirm budget, dashed at the search budget, on the same seeds; the dotted line is where "
        "the search stopped. While a run is in progress (the legend says how far; beyond "
        f"{plots.LEGEND_ARMS} arms, coloured by their rank at the search budget, the corner says how many run), "
        "its arm's line goes on faded past that point, over the seeds further along. The table with both "
        "budgets' final scores is in the front section.")]
    files: list[Path] = []
    for info in res.sweeps:
        for plan, table in confirmed[info.name]:
            rows = {row["dataset"]: row for row in table.rows}
            for entry in plan.datasets:
                name = f"confirm-{info.name}-{entry.experiment}-{plan.top_k or 'all'}.png"
                which = f"hand-tuned and top {plan.top_k}" if plan.top_k else "every trial"
                runs = finished(plan, entry)  # read once for the curves and the online budget
                row = rows.get(entry.experiment)
                path = plots.plot_confirm_curves(curves(plan, entry, runs), entry.updates["search"],
                                                 f"{entry.experiment}: {which}", figures / name,
                                                 ranked=ranked_at_search(row) if row else None)
                if path is not None:
                    files.append(path)
                    blocks.append(Image(path, f"{info.name} / {entry.experiment}"))
                points = transfer_points(row) if row else None
                if points is not None and len(points) >= TRANSFER_ARMS:
                    scatter = plots.plot_transfer(points, (entry.updates["search"], entry.updates["confirm"]),
                                                  f"{entry.experiment}: {which}, {tau_caption(row)}",
                                                  figures / name.replace("confirm-", "transfer-"))
                    if scatter is not None:
                        files.append(scatter)
                        blocks += [Paragraph(TRANSFER_TEXT), Image(scatter, f"transfer, {entry.experiment}")]
                bandit = _online_budget(final_episodes(plan, entry, runs=runs), entry,
                                        figures / name.replace("confirm-", "online-budget-"))
                if bandit is not None:
                    files.append(bandit.path)
                    blocks += [Paragraph(bandit.text), Image(bandit.path, f"online budget, {entry.experiment}")]
    if not files:
        return None, []
    return Section("confirm", "Confirmation at a larger budget: learning curves and transfer", blocks), files


@dataclass
class _Bandit:
    path: Path
    text: str


def _online_budget(episodes: dict[str, Any], entry: Any, path: Path) -> _Bandit | None:
    """The UCB-bandit curve over the confirmation's candidates (every arm but the baseline) from their final
    policies' recorded episodes at the confirm budget; None when fewer than two candidates have episodes."""
    baseline = episodes.pop(BASELINE, None)
    if len(episodes) < 2:
        return None
    result = ucb_curve(episodes)
    base = float(baseline.mean()) if baseline is not None else None
    drawn = plots.plot_online_budget(result.curve, result.true_scores, base,
                                     f"{entry.experiment}: choosing among {len(episodes)} online", path)
    if drawn is None:
        return None
    at = {n: float(result.curve["expected"].iloc[n - 1]) for n in (len(episodes), 20, 50, 200)
          if n <= len(result.curve)}
    text = (f"Online budget, {entry.experiment}: the UCB bandit (alpha 2, Unifloral's protocol) choosing among "
            f"{len(episodes)} candidates by episodes of their final policies ({sum(map(len, episodes.values()))} "
            f"recorded episodes); expected true score of the choice after "
            + ", ".join(f"{n} episodes {v:.2f}" for n, v in at.items())
            + f" (best candidate {max(result.true_scores.values()):.2f}"
            + (f", hand-tuned {base:.2f})." if base is not None else ")."))
    return _Bandit(drawn, text)


def _offline(res: SweepResults, figures: Path, estimates: dict[str, list[SweepEstimates]]
             ) -> tuple[Section | None, list[Path]]:
    """Choosing without a simulator: each offline estimator against the simulator score, per sweep and dataset
    (``mbrl-tune estimate``, or the trials' own reports in an ``--objective fqe|model`` sweep)."""
    rows, blocks, files = [], [], []
    for info in res.sweeps:
        for est in estimates[info.name]:
            rows += [agreement_row(est, e) for e in est.agreement]
            labels = {e: f"{e}: Spearman {a.spearman:.2f}, n={a.n}" for e, a in est.agreement.items()}
            path = plots.plot_estimates(est.rows, labels, f"{info.name} / {est.experiment}",
                                        figures / f"estimates-{info.name}-{est.experiment}.png",
                                        data_best=None if est.data is None else est.data.best)
            if path is not None:
                files.append(path)
                blocks.append(Image(path, f"offline estimates against the simulator score, {est.experiment}"))
            bandit = _online_vs_offline(info, est, figures / f"online-vs-offline-{info.name}-{est.experiment}.png")
            if bandit is not None:
                files.append(bandit.path)
                blocks += [Paragraph(bandit.text), Image(bandit.path, f"online budget, {est.experiment}")]
    if not rows:
        return None, []
    return Section("offline", "Choosing offline: estimates against the simulator",
                   [Paragraph(AGREEMENT_TEXT), Table(AGREEMENT_HEADER, rows), *blocks]), files


def _online_vs_offline(info: SweepSpec, est: SweepEstimates, path: Path) -> _Bandit | None:
    """The UCB bandit choosing among the sweep's finished trials by episodes of their final policies, beside
    what each offline estimator's top trial scores with no episode at all."""
    episodes, first = trial_episodes(info, est.dataset)
    if len(episodes) < 2:
        return None
    result = ucb_curve(episodes)
    picks = offline_picks(est)
    drawn = plots.plot_online_budget(result.curve, {}, first, f"{info.name} / {est.experiment}: online or offline",
                                     path, marks={f"{e}'s top trial (no episode)": v for e, v in picks.items()})
    if drawn is None:
        return None
    at = {n: float(result.curve["expected"].iloc[n - 1]) for n in (len(episodes), 50, 200) if n <= len(result.curve)}
    text = (f"Online or offline, {info.name} / {est.experiment}: the UCB bandit (alpha 2) choosing among the "
            f"{len(episodes)} finished trials by episodes of their final policies (their last evaluations' "
            f"{sum(map(len, episodes.values()))} recorded episodes); expected true score of its choice after "
            + ", ".join(f"{n} episodes {v:.2f}" for n, v in at.items())
            + f" (best trial {max(result.true_scores.values()):.2f}"
            + (f", the first, hand-tuned trial {first:.2f}" if first is not None else "") + "). With no episode: "
            + ", ".join(f"{e}'s top trial scores {v:.2f}" for e, v in picks.items()) + ".")
    return _Bandit(drawn, text)


def _calibration(res: SweepResults, figures: Path) -> Section:
    blocks: list[Any] = [Paragraph(
        "Correlation of each uncertainty heuristic with the true one-step error of the learned model's mean "
        "prediction (real MuJoCo stepped from the simulator state behind each state), at model step k of "
        "rollouts from dataset states. Spearman: rank agreement, what a penalty needs; exact_fraction: share "
        "of rows whose simulator state is exact (see trials/measure/calibration.py).")]
    found = False
    for info in res.sweeps:
        out = read_calibration(info.root / "calibration")
        if out is None:
            continue
        found = True
        meta = out.meta
        blocks.append(Paragraph(f"{info.name}: env {meta.get('env')}, policy {meta.get('policy')}, "
                                f"{meta.get('states')} start states, horizons {meta.get('horizons')}, "
                                f"{meta.get('num_models')} models / {meta.get('num_elites')} elites, "
                                f"pool {meta.get('pool_key', '?')}."))
        cols = ["horizon", "heuristic", "n", "exact_fraction", "spearman", "pearson", "spearman_sample_error",
                "mean_true_error", "mean_heuristic"]
        blocks.append(Table(cols, [[_f(row[c]) for c in cols] for row in out.table.to_dict("records")]))
        for name, src in out.figures.items():
            dst = figures / f"calibration-{info.name}-{name}.png"
            shutil.copyfile(src, dst)
            blocks.append(Image(dst, f"{info.name}: {name} against the true model error"))
    if not found:
        blocks.append(Paragraph("No calibration results: run mbrl-tune calibrate --dataset FILE --out "
                                "SWEEP_DIR/calibration first."))
    return Section("calibration", "Uncertainty calibration", blocks)


def _plots(res: SweepResults, figures: Path) -> tuple[Section, list[Path]]:
    made: list[tuple[Path | None, str]] = [
        (plots.plot_best_so_far(res.trials, figures / "best-so-far.png"),
         "Best final score so far against trial number (dots: each trial's score), one line per sweep."),
        (plots.plot_learning_curves(res.history, figures / "learning-curves.png"),
         "Normalised score per epoch of every trial."),
        (plots.plot_score_vs_params(res.trials, res.params, res.log_scale, figures / "score-vs-params.png"),
         "Final score against each searched parameter."),
        (plots.plot_score_by_penalty(res.trials, figures / "score-by-penalty.png"),
         "Final score by penalty heuristic."),
        (plots.plot_parallel(res.trials, res.params, res.log_scale, figures / "parallel-coordinates.png"),
         "Parallel coordinates of the searched values, coloured by final score."),
    ]
    blocks: list[Any] = [Image(p, caption) for p, caption in made if p is not None]
    if not blocks:
        blocks.append(Paragraph("No completed trials to plot yet."))
    return Section("plots", "Plots", blocks), [p for p, _ in made if p is not None]


def _importance(res: SweepResults, figures: Path) -> tuple[Section, list[Path]]:
    done = res.trials[res.trials["status"].isin(COMPLETED)]
    tables = [importance(group, res.params).assign(dataset=dataset)
              for dataset, group in done.groupby("dataset", sort=False)]
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(
        columns=["dataset", "parameter", "kind", "measure", "importance", "n"])
    blocks: list[Any] = [Paragraph(
        "Importance of each searched parameter for the final score, per dataset (over the completed trials of "
        "every sweep in this report): |Spearman rho| for numeric parameters, eta squared (share of score "
        "variance between categories) for categorical ones; both in [0, 1], without interactions: hints, "
        "not effects.")]
    blocks.append(Table(["dataset", "parameter", "kind", "measure", "importance", "trials"],
                        [[r["dataset"], r["parameter"], r["kind"], r["measure"], _f(r["importance"]), str(r["n"])]
                         for r in table.to_dict("records")]))
    path = plots.plot_importance(table, figures / "importance.png")
    if path is not None:
        blocks.append(Image(path, "Per-parameter importance."))
    return Section("importance", "Parameter importance", blocks), [path] if path else []


def _trials(res: SweepResults) -> Section:
    t = res.trials.sort_values("score", ascending=False, na_position="last")
    seeds = [c for c in t.columns if c.startswith("score_seed")]
    cols = ["sweep", "dataset", "trial", "status", "epochs", "score", "best_score", *seeds, "wall_s",
            *res.params]
    rows = [[_f(r[c], 4) if c in r else "-" for c in cols] for r in t.head(MAX_TRIAL_ROWS).to_dict("records")]
    note = f"Best first; {len(t)} trials" + (f", the first {MAX_TRIAL_ROWS} shown." if len(t) > MAX_TRIAL_ROWS else ".")
    return Section("trials", "All trials", [Paragraph(note), Table(cols, rows)])


def _title(infos: list[SweepSpec]) -> str:
    return "mbrl-tune report: " + ", ".join(i.name for i in infos)


def build_report(sweep_dirs: list[Path], out_dir: Path,
                 best_configs: dict[tuple[str, str], Path] | None = None, title: str | None = None) -> ReportFiles:
    """Write ``report.html``, ``report.md`` and ``figures/`` into ``out_dir``. ``best_configs`` maps
    (sweep name, dataset stem) to an exported best-config YAML (``tuner.store.export.export_best``)."""
    res = load_sweeps(list(sweep_dirs))
    figures = out_dir / FIGURES
    figures.mkdir(parents=True, exist_ok=True)
    plot_section, plot_files = _plots(res, figures)
    importance_section, importance_files = _importance(res, figures)
    calibration_section = _calibration(res, figures)
    estimates = {info.name: sweep_estimates(info) for info in res.sweeps}  # read once: the bootstraps take a while
    confirmed = {info.name: confirmations(info.root) for info in res.sweeps}  # the tables once for both
    front = front_section(res.sweeps, estimates, confirmed)
    confirm_section, confirm_files = _confirmation(res, figures, confirmed)
    offline_section, offline_files = _offline(res, figures, estimates)
    sections = [*([front] if front else []), _summary(res), _best(res, best_configs or {}), _comparison(res),
                *([confirm_section] if confirm_section else []), *([offline_section] if offline_section else []),
                calibration_section, plot_section,
                importance_section, _trials(res)]
    title = title or _title(res.sweeps)
    intro = (f"Generated {time.strftime('%Y-%m-%d %H:%M:%S')} from " + ", ".join(str(i.root) for i in res.sweeps)
             + ".")
    html_path, md_path = out_dir / HTML_FILE, out_dir / MD_FILE
    atomic_write_text(html_path, render_html(title, intro, sections))
    atomic_write_text(md_path, render_markdown(title, intro, sections, out_dir))
    calib = [b.path for b in calibration_section.blocks if isinstance(b, Image)]
    return ReportFiles(html_path, md_path, [*plot_files, *importance_files, *confirm_files, *offline_files, *calib])
