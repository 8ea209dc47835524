"""Best found vs hand-tuned: real re-runs as Ray Tune trials, the same fresh seeds for both, a table with
confidence intervals, cached runs never repeated."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.compare import bootstrap_interval, welch_interval
from analysis.results import load_sweep
from tuner.store.records import read_trials


def _runs(sweep: Path) -> list:
    folder = sweep / "compare" / "mopo_official" / "hopper-random"
    return [r for run in sorted(folder.glob("run-*")) for r in read_trials(run)]


def test_compare_runs_baseline_and_best_on_the_same_fresh_seeds(analysed) -> None:
    runs = _runs(analysed.sweep)
    # baseline: sweep seed 0 + fresh seeds 1, 2; best: fresh seeds 1, 2 -> five single-seed Tune trials
    assert len(runs) == 5 and all(r.status == "finished" and len(r.seeds) == 1 for r in runs)
    baseline = [r for r in runs if r.trial_config().num_models == 7]
    best = [r for r in runs if r.trial_config().num_models == 5]
    assert sorted(r.seeds[0] for r in baseline) == [0, 1, 2] and sorted(r.seeds[0] for r in best) == [1, 2]
    for r in baseline:  # the published point as published: 7 models, 5 elites, pool enlarged to hold them
        cfg = r.trial_config()
        assert (cfg.penalty, cfg.lam, cfg.rollout.horizon, cfg.num_elites, cfg.dynamics.pool_size) == (
            "max_aleatoric", 1.0, 5, 5, 7)
    sweep = load_sweep(analysed.sweep).trials
    top = sweep.sort_values("score", ascending=False).iloc[0]
    for r in best:  # the sweep's best configuration, same budget
        cfg = r.trial_config()
        assert (cfg.penalty, cfg.lam, cfg.rollout.horizon) == (top["penalty"], top["lam"], top["rollout.horizon"])
        assert cfg.epochs == 3 and cfg.steps_per_epoch == 40


def test_table_holds_means_stds_and_intervals_of_the_real_runs(analysed) -> None:
    folder = analysed.sweep / "compare" / "mopo_official"
    doc = json.loads((folder / "comparison.json").read_text())
    (row,) = doc["rows"]
    runs = _runs(analysed.sweep)
    scores = {(r.trial_config().num_models, r.seeds[0]): r.last["score"] for r in runs}
    base = np.array([scores[(7, 1)], scores[(7, 2)]])
    best = np.array([scores[(5, 1)], scores[(5, 2)]])
    assert row["fresh_seeds"] == [1, 2] and row["sweep_seeds"] == [0]
    assert row["baseline_mean"] == pytest.approx(base.mean()) and row["baseline_std"] == pytest.approx(base.std(ddof=1))
    assert row["best_mean"] == pytest.approx(best.mean()) and row["best_std"] == pytest.approx(best.std(ddof=1))
    assert row["baseline_sweep_seeds_mean"] == pytest.approx(scores[(7, 0)])
    assert row["diff"] == pytest.approx(best.mean() - base.mean())
    assert row["diff_ci_low"] <= row["diff"] <= row["diff_ci_high"]
    assert row["diff_boot_low"] <= row["diff"] <= row["diff_boot_high"]
    assert row["baseline_config"]["num_models"] == 7 and row["best_config"]["num_models"] == 5
    csv = pd.read_csv(folder / "comparison.csv")
    assert list(csv["dataset"]) == ["hopper-random"] and csv["diff"].iloc[0] == pytest.approx(row["diff"])
    assert "difference best - baseline on fresh seeds" in analysed.compare_stdout
    assert "hand-tuned baseline" in analysed.compare_stdout


def test_a_second_compare_reuses_every_cached_run(analysed, cli) -> None:
    before = json.loads((analysed.sweep / "compare" / "mopo_official" / "comparison.json").read_text())["rows"]
    again = cli("compare", str(analysed.sweep), "--seeds", "2")
    assert again.returncode == 0, again.stderr[-2000:]
    assert "all 5 runs cached" in again.stdout and len(_runs(analysed.sweep)) == 5
    after = json.loads((analysed.sweep / "compare" / "mopo_official" / "comparison.json").read_text())["rows"]
    assert after[0]["diff"] == before[0]["diff"]


def test_bad_inputs_exit_2_with_one_line(tmp_path: Path, sweep_dir: Path, cli) -> None:
    for args, message in ((["compare", str(tmp_path)], "not a sweep folder"),
                          (["compare", str(sweep_dir), "--source", "nope"], "unknown; known: mopo_official")):
        done = cli(*args)
        assert done.returncode == 2 and message in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1


def test_welch_interval_is_the_unequal_variance_t_interval() -> None:
    a, b = np.array([3.0, 4.0, 6.0, 7.0]), np.array([1.0, 2.0, 2.5])
    ci, p = welch_interval(a, b)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = stats.t.ppf(0.975, df) * math.sqrt(va + vb)
    diff = a.mean() - b.mean()
    assert (ci.low, ci.high) == (pytest.approx(diff - half), pytest.approx(diff + half))
    assert 0 < p < 0.05
    assert math.isnan(welch_interval(a, b[:1])[0].low), "one run per arm has no interval"


def test_bootstrap_interval_brackets_the_difference_and_is_reproducible() -> None:
    a, b = np.array([3.0, 4.0, 6.0, 7.0]), np.array([1.0, 2.0, 2.5])
    ci = bootstrap_interval(a, b)
    assert ci.low < a.mean() - b.mean() < ci.high and ci == bootstrap_interval(a, b)


def test_a_table_is_never_replaced_by_one_with_fewer_runs(analysed, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """A copy of the sweep that lost some runs (a partial copy, missing files) tabulates fewer finished runs
    than its stored comparison: the stored table is kept and one line says so."""
    import shutil

    from analysis.compare import write_comparison

    copy = tmp_path / "copy"
    shutil.copytree(analysed.sweep, copy, ignore=shutil.ignore_patterns("checkpoint_*", "events.*"))
    stored = json.loads((copy / "compare/mopo_official/comparison.json").read_text())
    newest = max((copy / "compare/mopo_official/hopper-random").glob("run-*"))
    lost = next(p for p in newest.iterdir() if p.is_dir() and (p / "result.json").is_file())
    shutil.rmtree(lost)
    out = write_comparison(copy, "mopo_official")
    assert out is not None and out.rows == stored["rows"]
    assert json.loads((copy / "compare/mopo_official/comparison.json").read_text()) == stored
    err = capsys.readouterr().err
    assert "finished runs for hopper-random, only" in err and "the stored table is kept" in err, err
