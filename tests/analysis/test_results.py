"""A sweep folder read back as tables: every trial with its config and scores, every epoch's metrics."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from analysis.results import best_so_far, load_sweep, load_sweeps
from tuner.errors import SweepError
from tuner.store.records import read_trials
from tuner.store.spec import SweepSpec


def test_trials_frame_has_each_trial_with_config_scores_and_order(sweep_dir: Path, hopper_random_file: Path) -> None:
    res = load_sweep(sweep_dir)
    t = res.trials
    records = {r.trial_id: r for r in read_trials(sweep_dir / hopper_random_file.stem)}
    assert len(t) == 3 and set(t["trial_id"]) == set(records)
    assert res.params == ["penalty", "lam", "rollout.horizon"] and res.log_scale == {"lam"}
    assert list(t["order"]) == [1, 2, 3], "rows follow Tune's trial creation order"
    for row in t.to_dict("records"):
        record = records[row["trial_id"]]
        assert row["dataset"] == "hopper-random" and row["status"] == "finished" and row["epochs"] == 3
        assert row["score"] == record.last["score"] == row["score_seed0"]
        assert row["best_score"] == max(h["score"] for h in record.history) >= row["score"]
        assert row["wall_s"] == pytest.approx(sum(h["time_this_iter_s"] for h in record.history))
        for key, value in record.overrides.items():  # searched and fixed values, dotted keys as columns
            assert row[key] == value
    first = t.iloc[0]  # the sweep starts from the published hopper-random setting (h=5, lambda=1)
    assert (first["penalty"], first["lam"], first["rollout.horizon"]) == ("max_aleatoric", 1.0, 5)


def test_history_frame_has_every_epoch_and_numeric_metric(sweep_dir: Path) -> None:
    h = load_sweep(sweep_dir).history
    assert len(h) == 9 and sorted(h.groupby("trial_id")["epoch"].apply(list).sum()) == [1, 1, 1, 2, 2, 2, 3, 3, 3]
    for metric in ("score", "score_seed0", "penalty_mean", "model_holdout_mse", "q_mean", "time_this_iter_s"):
        assert np.isfinite(h[metric]).all(), metric
    assert "status" not in h.columns and "config" not in h.columns  # text and nested values are left out


def test_best_so_far_is_the_running_maximum_in_trial_order(sweep_dir: Path) -> None:
    t = load_sweep(sweep_dir).trials
    curve = best_so_far(t)
    assert list(curve["trial"]) == [1, 2, 3]
    assert list(curve["best"]) == list(np.maximum.accumulate(t["score"].to_numpy()))


def test_several_sweeps_stack_in_the_order_given(sweep_dir: Path, random_sweep_dir: Path) -> None:
    res = load_sweeps([random_sweep_dir, sweep_dir])
    assert list(dict.fromkeys(res.trials["sweep"])) == ["rand2", "ax3"]
    assert dict(res.trials.groupby("sweep")["searcher"].first()) == {"rand2": "random", "ax3": "ax"}
    assert len(res.trials) == 5 and len(res.history) == 15


def test_reading_results_never_imports_ray(sweep_dir: Path) -> None:
    code = (f"import sys; from analysis.results import load_sweep; r = load_sweep({str(sweep_dir)!r}); "
            "assert len(r.trials) == 3; assert 'ray' not in sys.modules, 'analysis imported Ray'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_a_folder_without_sweep_json_is_refused_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(SweepError, match="not a sweep folder") as err:
        SweepSpec.load(tmp_path)
    assert "\n" not in str(err.value)


def test_unscored_trials_count_as_nan(sweep_dir: Path) -> None:
    t = load_sweep(sweep_dir).trials
    assert not any(math.isnan(s) for s in t["score"])  # all finished here; NaN is reserved for no score
