"""The agreement of an offline estimate with the true scores: rank correlation with its bootstrap interval,
and regret@k, on cases whose answers are known."""

from __future__ import annotations

import json
import math
import subprocess
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest

from analysis.ope import (
    AGREEMENT_HEADER,
    DataReturns,
    SweepEstimates,
    above_data,
    agreement_row,
    data_returns,
)
from analysis.ranking import agreement, regret_at

TRUE = [1.0, 5.0, 3.0, 9.0, 7.0, 2.0]


def test_a_perfect_estimate_ranks_exactly_and_loses_nothing() -> None:
    out = agreement(TRUE, [10 * s + 4 for s in TRUE], samples=500)
    assert out.n == 6 and out.spearman == pytest.approx(1.0)
    assert out.spearman_low == pytest.approx(1.0) and out.regret == {1: 0.0, 3: 0.0}


def test_a_reversed_estimate_picks_the_worst() -> None:
    out = agreement(TRUE, [-s for s in TRUE], samples=500)
    assert out.spearman == pytest.approx(-1.0)
    assert out.regret[1] == 9.0 - 1.0 and out.regret[3] == 9.0 - 3.0  # its top 3 are the trials scoring 1, 2, 3


def test_regret_counts_the_best_of_the_top_k() -> None:
    estimate = [0.0, 8.0, 9.0, 1.0, 7.0, 0.5]  # ranks trial 2 (true 3), then 1 (true 5), then 4 (true 7)
    assert regret_at(TRUE, estimate, 1) == 6.0 and regret_at(TRUE, estimate, 2) == 4.0
    assert regret_at(TRUE, estimate, 3) == 2.0 and regret_at(TRUE, estimate, 6) == 0.0


def test_noise_widens_the_interval_and_missing_values_are_left_out() -> None:
    rng = np.random.default_rng(0)
    true = rng.normal(size=40)
    noisy = true + rng.normal(scale=1.0, size=40)
    noisy[3] = math.nan
    out = agreement(true, noisy, samples=2000, seed=1)
    assert out.n == 39 and 0.3 < out.spearman < 0.9
    assert out.spearman_low < out.spearman < out.spearman_high and out.spearman_high - out.spearman_low > 0.1
    assert agreement(true, noisy, samples=2000, seed=1) == out  # the same seed, the same interval
    assert math.isnan(agreement([1.0, 2.0], [2.0, 1.0]).spearman)  # too few trials to rank


def test_estimate_values_a_real_sweeps_trials_offline(sweep_dir: Path,
                                                      cli: Callable[..., subprocess.CompletedProcess]) -> None:
    """``mbrl-tune estimate`` on the package's real 3-trial sweep: every finished trial's final policy gets
    a finite FQE value and a model value in the pool of a seed no trial trained against, beside its score."""
    done = cli("estimate", str(sweep_dir), "--fqe-steps", "300")
    assert done.returncode == 0, done.stderr
    result = json.loads((sweep_dir / "estimates" / "hopper-random.json").read_text())
    assert result["judge_pool_seed"] == 1 and len(result["rows"]) == 3 and not result["without_checkpoint"]
    for row in result["rows"]:
        assert row["seeds"] == [0] and all(math.isfinite(row[k]) for k in ("score", "fqe", "model"))
    assert set(result["agreement"]) == {"fqe", "model"} and result["agreement"]["fqe"]["n"] == 3
    assert "fqe: Spearman" in done.stdout and "wrote" in done.stdout
    again = cli("estimate", str(sweep_dir), "--fqe-steps", "300")  # the same seeds, the same estimates
    assert again.returncode == 0
    values = lambda rows: [(r["trial"], r["fqe"], r["model"]) for r in rows]  # noqa: E731
    assert values(json.loads((sweep_dir / "estimates" / "hopper-random.json").read_text())["rows"]) == values(
        result["rows"])


def test_the_data_s_own_episodes_bound_what_it_shows(hopper_random_file: Path) -> None:
    """The reference beside the estimates: each episode's discounted return, computed here from the file's raw
    arrays with an explicit loop, and the count of estimates above the data's best episode."""
    with h5py.File(hopper_random_file, "r") as f:
        rewards, ends = np.asarray(f["rewards"]), np.asarray(f["terminals"]) | np.asarray(f["timeouts"])
    returns, current, t = [], 0.0, 0
    for r, end in zip(rewards, ends, strict=True):
        current += 0.9**t * float(r)
        t += 1
        if end:
            returns.append(current)
            current, t = 0.0, 0
    if t:
        returns.append(current)
    data = data_returns(str(hopper_random_file), 0.9)
    assert data is not None and data.episodes == len(returns) and data.gamma == 0.9
    assert data.best == pytest.approx(max(returns), rel=1e-5) and data.mean == pytest.approx(np.mean(returns), rel=1e-5)
    rows = [{"trial": "a", "score": 1.0, "fqe": data.best + 1.0}, {"trial": "b", "score": 2.0, "fqe": data.best - 1.0},
            {"trial": "c", "score": 3.0, "fqe": math.nan}, {"trial": "d", "score": 0.0, "fqe": 2 * data.best + 5.0}]
    assert above_data(rows, "fqe", data) == 2
    assert data_returns(str(hopper_random_file.parent / "gone.hdf5"), 0.9) is None


def test_the_row_counts_and_picks_among_the_trials_it_ranks() -> None:
    """The column's count and top pick use the trials the agreement ranks (finite score and estimate): a trial
    without a score is neither counted nor picked."""
    rows = [{"trial": "a", "score": 1.0, "fqe": 50.0}, {"trial": "b", "score": 9.0, "fqe": 30.0},
            {"trial": "c", "score": math.nan, "fqe": 99.0}, {"trial": "d", "score": 4.0, "fqe": 10.0}]
    data = DataReturns(episodes=5, mean=20.0, best=40.0, gamma=0.99)
    est = SweepEstimates("s", "d.hdf5", "d", "the trials' own reports", rows,
                         {"fqe": agreement([r["score"] for r in rows], [r["fqe"] for r in rows], samples=200)},
                         {}, "fqe", data)
    row = dict(zip(AGREEMENT_HEADER, agreement_row(est, "fqe"), strict=True))
    assert row["trials"] == "3" and row["regret@1"] == "8.00"  # picks a (fqe 50, true 1), not c
    assert row["valued above the data's best episode"] == "1 of 3 (best episode 40; top pick above)"
    est = SweepEstimates("s", "d.hdf5", "d", "x", rows, est.agreement, {}, "fqe", None)
    assert dict(zip(AGREEMENT_HEADER, agreement_row(est, "fqe"), strict=True))[
        "valued above the data's best episode"] == "-"
