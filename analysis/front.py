"""The report's opening: the front table (per dataset, the hand-tuned baseline against the best found
configuration on fresh seeds, their difference with 95% CIs, the two configurations side by side and the
calibration ranking) and the dynamics pools the trials used (epochs to early stopping, holdout error).
It reads what ``compare``, ``calibrate`` and the pool training wrote; it runs nothing."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from analysis.calibration import read_calibration
from analysis.compare import sources_compared, write_comparison
from analysis.confirm import LATE, Confirmations, cell, confirmations, late_header, transfer_summary
from analysis.document import Paragraph, Section, Table
from analysis.ope import AGREEMENT_HEADER, AGREEMENT_TEXT, SweepEstimates, agreement_row, sweep_estimates
from trials.models.pool import read_pool
from tuner.store.spec import SweepSpec


def _num(value: Any, digits: int = 2) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return "-" if math.isnan(value) else f"{value:.{digits}f}"
    return "-" if value is None else str(value)


def _setting(setting: dict[str, Any], keys: list[str]) -> str:
    """``key=value`` for those of ``keys`` that ``setting`` has, sorted (floats to 4 significant digits)."""
    return ", ".join(f"{k}={setting[k]:.4g}" if isinstance(setting[k], float) else f"{k}={setting[k]}"
                     for k in sorted(keys) if k in setting) or "-"


def _split_keys(a: dict[str, Any], b: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The keys where two configurations differ (either lacks it or the values differ), and those shared."""
    differ = [k for k in {**a, **b} if k not in a or k not in b or a[k] != b[k]]
    return differ, [k for k in a if k not in differ]


def calibration_ranking(sweep_dir: Path) -> str:
    """Heuristics ranked by Spearman correlation with the true model error, per horizon."""
    out = read_calibration(Path(sweep_dir) / "calibration")
    if out is None:
        return "-"
    parts = []
    for horizon, rows in out.table.groupby("horizon"):
        ranked = rows.sort_values("spearman", ascending=False)
        parts.append(f"h{horizon}: " + " > ".join(f"{r.heuristic} {r.spearman:.2f}" for r in ranked.itertuples()))
    return "; ".join(parts)


def front_section(sweeps: list[SweepSpec], estimates: dict[str, list[SweepEstimates]] | None = None,
                  confirmed: dict[str, Confirmations] | None = None) -> Section | None:
    """The front table, or None when no sweep has a comparison yet. ``estimates``: each sweep's offline
    estimates by sweep name, when the caller has read them (:func:`analysis.ope.sweep_estimates`);
    ``confirmed``: each sweep's confirmations with their tables (:func:`analysis.confirm.confirmations`)."""
    header = ["dataset", "hand-tuned (fresh seeds)", "best found (fresh seeds)", "difference", "95% CI (Welch)",
              "95% CI (bootstrap)", "hand-tuned configuration", "best found configuration", "same in both",
              "calibration (Spearman)"]
    rows = []
    for info in sweeps:
        ranking = calibration_ranking(info.root)
        for source in sources_compared(info.root):
            out = write_comparison(info.root, source)
            for r in out.rows if out else []:
                differ, shared = _split_keys(r["baseline_config"], r["best_config"])
                rows.append([f"{r['dataset']} ({source})",
                             f"{_num(r['baseline_mean'])} ± {_num(r['baseline_std'])} (n={r['n_baseline']})",
                             f"{_num(r['best_mean'])} ± {_num(r['best_std'])} (n={r['n_best']})",
                             _num(r["diff"]), f"[{_num(r['diff_ci_low'])}, {_num(r['diff_ci_high'])}]",
                             f"[{_num(r['diff_boot_low'])}, {_num(r['diff_boot_high'])}]",
                             _setting(r["baseline_config"], differ), _setting(r["best_config"], differ),
                             _setting(r["baseline_config"], shared), ranking])
    transfer = confirm_blocks(sweeps, confirmed)
    read = estimates if estimates is not None else {info.name: sweep_estimates(info) for info in sweeps}
    offline = [agreement_row(est, e) for info in sweeps for est in read[info.name] for e in est.agreement]
    if offline:
        transfer += [Paragraph("Choosing offline. " + AGREEMENT_TEXT), Table(AGREEMENT_HEADER, offline)]
    if not rows and not transfer:
        return None
    intro = Paragraph(
        "Per dataset: the published hand-tuned setting, run as its source ran it, and the sweep's best "
        "configuration, both on fresh seeds the best was not selected on, same budget; D4RL-normalised "
        "scores, mean ± std over seeds; the two configurations by the settings where they differ, then the "
        "settings they share. Difference = best - hand-tuned, with 95% confidence intervals "
        "(Welch t; percentile bootstrap). Calibration: heuristics ranked by Spearman correlation with the "
        "true one-step model error, per rollout horizon.")
    pools = Paragraph("Dynamics pools the trials used: training epochs (to early stopping unless the budget capped "
                      "them), holdout MSE per member averaged over members, in the data's own units and in units "
                      "of each target dimension's std, and the members' disagreement on held-out inputs.")
    return Section("front", "Result", [intro, *([Table(header, rows)] if rows else []), *transfer, pools,
                                       pools_table(sweeps)])


def confirm_blocks(sweeps: list[SweepSpec], confirmed: dict[str, Confirmations] | None = None
                   ) -> list[Paragraph | Table]:
    """Fidelity transfer (``mbrl-tune confirm``): per dataset, each arm at the search budget and at the
    confirm budget on the same seeds, and the transfer figures; nothing when no sweep has a confirmation.
    ``confirmed`` as in :func:`front_section` (read here when None)."""
    blocks: list[Paragraph | Table] = []
    for info in sweeps:
        for plan, table in confirmed[info.name] if confirmed is not None else confirmations(info.root):
            for row in table.rows:
                u = row["updates"]
                which = "every finished trial, the sweep's seeds" if plan.top_k is None else \
                    f"hand-tuned and the {plan.top_k} best distinct, fresh seeds"
                if not any(a["confirm"]["n"] for a in row["arms"]):  # planned, nothing at the larger budget yet
                    blocks.append(Paragraph(f"Fidelity transfer, {row['dataset']} ({which} {row['seeds']}): no run "
                                            f"at {u['confirm']:,} updates has finished yet."))
                    continue
                blocks.append(Paragraph(f"Fidelity transfer, {row['dataset']} ({which} {row['seeds']}): "
                                        + transfer_summary(row)))
                late = late_header(row)  # "" for a table stored before the late mean was measured
                blocks.append(Table(["arm", "configuration", "sweep score", f"{u['search']:,} updates",
                                     f"{u['confirm']:,} updates"] + ([late] if late else []),
                                    [[a["arm"], _setting(a["setting"], list(a["setting"])), _num(a["sweep_score"]),
                                      cell(a["search"]), cell(a["confirm"])] + ([cell(a[LATE])] if late else [])
                                     for a in row["arms"]]))
    return blocks


def pool_rows(sweep: SweepSpec) -> list[dict[str, Any]]:
    """One record per dynamics pool stored in the sweep (its training as recorded beside its weights)."""
    rows = [pool_record(path) for path in sorted(sweep.pool_dir.glob("pool-*.pt"))]
    return [r for r in rows if r is not None]


def pool_record(path: Path) -> dict[str, Any] | None:
    """A stored pool's training record: members, epochs, seconds, holdout MSE in the data's units and in
    target-std units (mean over members; each member's in data units too), held-out disagreement; None when
    the file is damaged (the next trial that needs it trains it again, ``trials.models.pool``)."""
    saved = read_pool(path, path.stem, "left out of the table (the next trial that needs it trains it again)")
    if saved is None:
        return None
    fit = saved.get("fit", {})
    losses = saved["state"]["holdout_loss"].tolist()
    return {"pool": path.stem, "members": len(losses), "epochs": int(saved["epochs"]),
            "train_seconds": float(saved["train_seconds"]),
            "holdout_mse_raw": float(sum(fit["holdout_mse_raw"]) / len(losses)) if fit else math.nan,
            "holdout_mse_std": float(sum(fit["holdout_mse_std"]) / len(losses)) if fit else math.nan,
            "holdout_mse_raw_members": [float(v) for v in fit["holdout_mse_raw"]] if fit else [],
            "disagreement": float(fit.get("disagreement", math.nan)),
            "bootstrap": saved["config"].get("bootstrap", False),
            "normalize_targets": saved["config"].get("normalize_targets", True)}


def pools_table(sweeps: list[SweepSpec]) -> Table:
    header = ["sweep", "pool", "members", "epochs", "train s", "holdout MSE (data units)",
              "holdout MSE (target std units)", "member disagreement"]
    rows = [[info.name, r["pool"], str(r["members"]), str(r["epochs"]), f"{r['train_seconds']:.0f}",
             _num(r["holdout_mse_raw"], 4), _num(r["holdout_mse_std"], 4), _num(r["disagreement"], 3)]
            for info in sweeps for r in pool_rows(info)]
    return Table(header, rows or [["-"] * len(header)])
