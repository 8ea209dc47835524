"""The confirmation table's text (``analysis.confirm``): figures that cannot be computed yet (one seed, one
finished arm) say what they still need instead of printing nan; with enough seeds the printed intervals are
Welch's and the bootstrap's, checked against scipy's own t interval; every arm is compared with the
baseline, with Welch's p Holm-adjusted over the arms."""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from scipy import stats

from analysis import confirm
from analysis.compare import bootstrap_interval, welch_interval
from analysis.confirm import LATE, flat_rows, format_confirmation, late_header, transfer_summary, vs_baseline
from tuner.store.confirm_plan import CONFIRM, SEARCH


def _row(best: list[float], base: list[float]) -> dict[str, Any]:
    """A dataset row in the shape stored before every arm was compared (best1 only, under
    ``best1_vs_baseline_at_confirm``), from per-seed confirm-budget scores; tests add ``vs_baseline``."""
    b, h = np.array(best), np.array(base)
    welch, p = welch_interval(b, h)
    boot = bootstrap_interval(b, h)

    def cell(x: list[float]) -> dict[str, Any]:
        std = float(np.std(x, ddof=1)) if len(x) > 1 else math.nan
        return {"mean": float(np.mean(x)), "std": std, "n": len(x), "seeds": {str(i + 1): v for i, v in enumerate(x)}}

    arms = [{"arm": "baseline", "setting": {}, "sweep_trial": None, "sweep_score": None,
             SEARCH: cell([1.0] * len(base)), CONFIRM: cell(base)},
            {"arm": "best1", "setting": {}, "sweep_trial": "t", "sweep_score": 12.5,
             SEARCH: cell([8.0] * len(best)), CONFIRM: cell(best)}]
    n = min(len(best), len(base))
    tau = ({"tau": math.nan, "p": math.nan, "n": 0} if n < 3 else
           {"tau": 1.0, "p": 1.0, "n": 2})
    return {"dataset": "hopper-medium-100k", "name": "hopper-medium", "seeds": [1, 2, 3],
            "updates": {SEARCH: 20_000, CONFIRM: 200_000}, "arms": arms, "kendall_search_vs_confirm": tau,
            "best1_vs_baseline_at_confirm": {
                "difference": float(b.mean() - h.mean()), "welch": [welch.low, welch.high], "p": p,
                "bootstrap": [boot.low, boot.high], "n": [len(b), len(h)]}}


def test_one_seed_per_arm_says_what_is_missing_instead_of_nan() -> None:
    row = _row([71.89], [0.95])
    for text in (format_confirmation([row]), transfer_summary(row)):
        assert "nan" not in text, text
        assert "+70.94 (n=1/1; intervals need 2 seeds per arm)" in text, text
        assert "not yet (needs 2 arms finished at both budgets on every seed; n=0)" in text, text


def test_three_seeds_print_welchs_and_the_bootstraps_intervals() -> None:
    best, base = [5.0, 9.5, 1.6], [2.1, 4.3, 1.4]
    ci = stats.ttest_ind(best, base, equal_var=False).confidence_interval(0.95)
    row = _row(best, base)
    text = format_confirmation([row])
    boot = row["best1_vs_baseline_at_confirm"]["bootstrap"]
    assert (f"best1 - baseline at 200,000 updates: {np.mean(best) - np.mean(base):+.2f}, 95% CI Welch "
            f"[{ci.low:.2f}, {ci.high:.2f}]") in text, text
    assert f"bootstrap [{boot[0]:.2f}, {boot[1]:.2f}] (n=3/3)" in text, text
    assert "Kendall's tau, arms at 20,000 vs 200,000 updates: 1.00 (n=2, p 1.00)" in text, text
    assert "nan" not in text and "nan" not in transfer_summary(row)


def test_the_search_budgets_ranking_is_judged_by_spearman_and_regret() -> None:
    """Fewer than 3 arms: no ranking figure yet; with 4 the Spearman interval and regret@1 and @3 print."""
    row = _row([5.0, 9.5, 1.6], [2.1, 4.3, 1.4])
    row["winner_at_search"], row["winner_at_confirm"] = "best1", "best2"
    row["search_ranking"] = {"n": 2, "spearman": math.nan, "spearman_low": math.nan, "spearman_high": math.nan,
                             "regret": {"1": math.nan, "3": math.nan}}
    assert "judged at 200,000: not yet (needs 3 arms finished at both budgets on every seed; n=2)" in \
        format_confirmation([row])
    row["search_ranking"] = {"n": 4, "spearman": 0.4, "spearman_low": -0.8, "spearman_high": 1.0,
                             "regret": {1: 1.62, 3: 0.0}}
    text = format_confirmation([row])
    assert "Spearman 0.40 [-0.80, 1.00], regret@1 1.62, regret@3 0.00 (n=4;" in text, text
    assert "ranking judged at 200,000: Spearman 0.40 [-0.80, 1.00]" in transfer_summary(row)


def test_a_table_stored_before_the_ranking_was_measured_still_prints() -> None:
    """``write_confirmation`` keeps a stored table that holds more runs than it finds; one written before
    ``search_ranking`` existed has the winners but not it."""
    row = _row([5.0, 9.5, 1.6], [2.1, 4.3, 1.4])
    row["winner_at_search"], row["winner_at_confirm"] = "best1", "best2"
    for text in (format_confirmation([row]), transfer_summary(row)):
        assert "at 200,000: best2" in text and "regret" not in text, text


def test_tied_scores_give_an_undefined_rank_figure_not_nan() -> None:
    row = _row([5.0, 9.5, 1.6], [2.1, 4.3, 1.4])
    row["kendall_search_vs_confirm"] = {"tau": math.nan, "p": math.nan, "n": 3}
    row["winner_at_search"], row["winner_at_confirm"] = "best1", "best1"
    row["search_ranking"] = {"n": 3, "spearman": math.nan, "spearman_low": math.nan, "spearman_high": math.nan,
                             "regret": {"1": 0.0, "3": 0.0}}
    text = format_confirmation([row])
    assert "updates: undefined (tied scores; n=3)" in text and "Spearman undefined (tied scores), regret@1 0.00" in text
    assert "nan" not in text, text


def test_every_arm_is_compared_with_the_baseline_and_p_is_holm_adjusted() -> None:
    """Each arm's difference from the baseline at both budgets, Welch's p from scipy, and Holm's step-down
    adjustment over the arms at the confirm budget (the i-th smallest of m p-values times m - i, i from 0,
    running maximum, capped at 1; pinned here to their values). An arm with one seed has no p and
    stays out of the family."""
    base = {1: 2.1, 2: 4.3, 3: 1.4}
    arms = {"best1": {1: 5.0, 2: 9.5, 3: 1.6}, "best2": {1: 6.9, 2: 7.3, 3: 8.9}, "best3": {1: 2.0, 2: 5.5, 3: 3.0},
            "best4": {1: 40.0}}
    scores = {name: {SEARCH: {1: 0.5}, CONFIRM: s} for name, s in {**arms, "baseline": base}.items()}
    scores["baseline"][SEARCH] = {1: 0.25}
    out = vs_baseline(scores, list(arms))
    p = {a: stats.ttest_ind(list(arms[a].values()), list(base.values()), equal_var=False).pvalue
         for a in ("best1", "best2", "best3")}
    assert sorted(p, key=p.get) == ["best2", "best1", "best3"]
    # 3 * p(best2); max(that, 2 * p(best1)); max(that, 1 * p(best3)): best3's own p is below best1's adjusted.
    holm = {"best2": 3 * p["best2"], "best1": 2 * p["best1"], "best3": 2 * p["best1"]}
    assert p["best3"] < holm["best3"]
    assert [round(holm[a], 4) for a in ("best2", "best1", "best3")] == [0.0345, 0.7058, 0.7058]
    for a in p:
        d = out[a][CONFIRM]
        assert d["p"] == pytest.approx(p[a]) and d["p_holm"] == pytest.approx(holm[a]), (a, d)
        assert d["difference"] == pytest.approx(np.mean(list(arms[a].values())) - np.mean(list(base.values())))
        assert out[a][SEARCH]["difference"] == pytest.approx(0.25) and out[a][SEARCH]["n"] == [1, 1]
    assert math.isnan(out["best4"][CONFIRM]["p_holm"]) and out["best4"][CONFIRM]["n"] == [1, 3]

    row = _row(list(arms["best1"].values()), list(base.values()))
    row["vs_baseline"] = out
    text, summary = format_confirmation([row]), transfer_summary(row)
    d = out["best2"][CONFIRM]
    assert (f"best2 - baseline at 200,000 updates: {d['difference']:+.2f}, 95% CI Welch [{d['welch'][0]:.2f}, "
            f"{d['welch'][1]:.2f}] (p 0.011, Holm over 3 of 4 arms so far 0.034)") in text, text
    assert "best4 - baseline at 200,000 updates: +37.40 (n=1/3; intervals need 2 seeds per arm)" in text, text
    assert "; at 20,000: +0.25 (n=1/1; intervals need 2 seeds per arm)" in text, text
    assert "best3 - baseline at 200,000: +0.90" in summary and "Holm over 3 of 4 arms so far 0.706" in summary
    assert "nan" not in text and "nan" not in summary, (text, summary)

    csv = {r["arm"]: r for r in flat_rows([row])}  # the row's own arms: baseline and best1
    assert csv["best1"]["confirm_p_holm"] == pytest.approx(holm["best1"])
    assert csv["best1"]["confirm_minus_baseline"] == pytest.approx(out["best1"][CONFIRM]["difference"])
    assert csv["best1"]["search_minus_baseline"] == pytest.approx(0.25)
    assert math.isnan(csv["baseline"]["confirm_minus_baseline"]) and math.isnan(csv["baseline"]["confirm_p"])


def test_tied_p_values_share_their_holm_value() -> None:
    """Two arms with the same scores have the same p; each is adjusted to twice it, whichever sorts first."""
    base, same = {1: 1.0, 2: 2.0, 3: 1.5}, {1: 4.0, 2: 6.0, 3: 5.0}
    scores = {"baseline": {CONFIRM: base}, "best1": {CONFIRM: same}, "best2": {CONFIRM: dict(same)}}
    out = vs_baseline(scores, ["best1", "best2"])
    p = out["best1"][CONFIRM]["p"]
    assert out["best2"][CONFIRM]["p"] == p and 0 < p < 0.5
    assert out["best1"][CONFIRM]["p_holm"] == out["best2"][CONFIRM]["p_holm"] == pytest.approx(2 * p)
    assert out["best1"][SEARCH]["n"] == [0, 0]  # no search-budget runs: an empty comparison, not an error
    assert "not yet (needs a finished seed of each arm; n=0/0)" in format_confirmation(
        [{**_row([4.0, 6.0, 5.0], [1.0, 2.0, 1.5]), "vs_baseline": out}])


def test_dataset_row_compares_every_arm_and_keeps_best1_under_its_old_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """``dataset_row`` with a baseline: ``vs_baseline`` per arm, and ``best1_vs_baseline_at_confirm`` is best1's
    confirm-budget entry (the key tables stored before read); without a baseline (``--top-k all``) neither."""
    per_seed = {"baseline": [2.1, 4.3, 1.4], "best1": [5.0, 9.5, 1.6], "best2": [6.9, 7.3, 8.9]}
    scores = {a: {SEARCH: {s: v / 2 for s, v in zip((1, 2, 3), vals, strict=True)},
                  CONFIRM: dict(zip((1, 2, 3), vals, strict=True))} for a, vals in per_seed.items()}
    monkeypatch.setattr(confirm, "arm_scores", lambda plan, entry, runs: scores)
    late = {"baseline": {1: (1.0, 10), 2: (2.0, 10), 3: (3.0, 10)}, "best1": {1: (5.0, 10), 2: (6.0, 10), 3: (7.0, 10)}}
    monkeypatch.setattr(confirm, "finished", lambda plan, entry: {})
    monkeypatch.setattr(confirm, "late_means", lambda plan, entry, runs: late)  # best2's runs kept no history

    def entry(names: list[str]) -> SimpleNamespace:
        arms = [SimpleNamespace(name=n, setting={}, sweep_trial=None if n == "baseline" else n,
                                sweep_score=None if n == "baseline" else 1.0) for n in names]
        return SimpleNamespace(arms=arms, seeds=[1, 2, 3], experiment="x", name="hopper-medium",
                               updates={SEARCH: 20_000, CONFIRM: 200_000})

    row = confirm.dataset_row(SimpleNamespace(top_k=2), entry(list(per_seed)))
    assert set(row["vs_baseline"]) == {"best1", "best2"}
    assert row["best1_vs_baseline_at_confirm"] is row["vs_baseline"]["best1"][CONFIRM]
    best2 = row["vs_baseline"]["best2"]
    gap = np.mean(per_seed["best2"]) - np.mean(per_seed["baseline"])
    assert best2[SEARCH]["difference"] == pytest.approx(gap / 2)
    assert best2[CONFIRM]["p_holm"] == pytest.approx(2 * best2[CONFIRM]["p"])  # best2's p is the smaller of 2
    assert row["vs_baseline"]["best1"][LATE]["difference"] == pytest.approx(4.0)
    assert row["vs_baseline"]["best2"][LATE]["n"] == [0, 3] and row["late_updates"] == 20_000
    assert [a[LATE]["mean"] for a in row["arms"]] == [2.0, 6.0, pytest.approx(math.nan, nan_ok=True)]
    text = format_confirmation([row])
    assert "mean of the last 20,000 updates (10 evaluations) |" in text
    assert "; by the late mean: +4.00, 95% CI Welch [" in text and "nan" not in text, text
    row = confirm.dataset_row(SimpleNamespace(top_k=None), entry(["best1", "best2"]))
    assert "vs_baseline" not in row and "best1_vs_baseline_at_confirm" not in row
    assert "baseline" not in format_confirmation([row]) and "nan" not in transfer_summary(row)


def test_the_late_mean_is_a_column_beside_the_score_and_absent_from_older_tables() -> None:
    row = _row([5.0, 9.5, 1.6], [2.1, 4.3, 1.4])
    assert late_header(row) == "" and "mean of the last" not in format_confirmation([row])  # stored before
    row["late_updates"] = 20_000
    for arm, mean in zip(row["arms"], (2.57, 50.2), strict=True):
        arm["late"] = {"mean": mean, "std": 2.0, "n": 2, "seeds": {}, "evaluations": [10]}
    text = format_confirmation([row])
    assert "| 200,000 updates | mean of the last 20,000 updates (10 evaluations) |\n|---|---|---|---|---|" in text
    assert "| 5.37 ± 3.96 (n=3) | 50.20 ± 2.00 (n=2) |" in text, text
    csv = {r["arm"]: r for r in flat_rows([row])}
    assert csv["baseline"]["late_mean"] == 2.57 and csv["best1"]["late_updates"] == 20_000
