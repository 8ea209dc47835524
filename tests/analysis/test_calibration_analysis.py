"""``mbrl-tune calibrate``: a correlation of every heuristic with the true model error per horizon, as a
table and scatter plots."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from analysis.calibration import correlation_table, read_calibration
from trials.measure.calibration import HEURISTICS, CalibrationResult


def test_calibrate_gives_a_finite_correlation_for_every_heuristic_and_horizon(analysed) -> None:
    out = analysed.sweep / "calibration"
    table = pd.read_csv(out / "calibration.csv")
    assert sorted(set(table["horizon"])) == [1, 5]
    assert set(table["heuristic"]) == set(HEURISTICS) and len(table) == 2 * len(HEURISTICS)
    for col in ("spearman", "pearson", "spearman_sample_error", "mean_true_error"):
        assert np.isfinite(table[col]).all(), col
    assert (table.loc[table["horizon"] == 1, "exact_fraction"] == 1.0).all(), "dataset states are exact"
    assert (table.loc[table["horizon"] == 1, "n"] == 150).all()
    doc = json.loads((out / "calibration.json").read_text())
    assert doc["meta"]["env"] == "hopper" and doc["meta"]["horizons"] == [1, 5] and doc["meta"]["pool_key"]
    for name in HEURISTICS:
        image = matplotlib.image.imread(out / f"scatter-{name}.png")
        assert image.ndim == 3 and image.shape[0] > 100
    assert "spearman" in analysed.calibrate_stdout and "loo_kl" in analysed.calibrate_stdout
    # It used (and trained once) a pool in the folder it was given.
    assert any(p.name.startswith("pool-") for p in (analysed.sweep / "pools").iterdir())


def test_table_matches_the_stored_rows(analysed) -> None:
    out = read_calibration(analysed.sweep / "calibration")
    assert out is not None
    result = CalibrationResult.load(out.result_path)
    again = correlation_table(result, [1, 5])
    pd.testing.assert_frame_equal(again.reset_index(drop=True), out.table, check_dtype=False)


def test_a_heuristic_that_orders_the_error_correlates_perfectly() -> None:
    error = np.linspace(0.1, 2.0, 30)
    n = len(error)
    zeros = np.zeros((n, 2))
    result = CalibrationResult(step=np.ones(n, dtype=int), start=np.arange(n), obs=zeros, action=zeros,
                               pred_next=zeros, sample_next=zeros, true_next=zeros, true_error=error,
                               sample_error=error, reward_error=error, exact=np.ones(n, dtype=bool),
                               heuristics={"monotone": np.exp(error), "flat": np.ones(n)})
    table = correlation_table(result).set_index("heuristic")
    assert table.loc["monotone", "spearman"] == pytest.approx(1.0)
    assert 0.9 < table.loc["monotone", "pearson"] < 1.0
    assert np.isnan(table.loc["flat", "spearman"]), "a constant heuristic has no correlation"


def test_bad_inputs_exit_2_with_one_line(hopper_random_file: Path, tmp_path: Path, cli) -> None:
    for args, message in ((["--policy", str(tmp_path / "missing.pt")], "neither a policy kind"),
                          (["--horizons", "0"], "horizons are model steps"),
                          (["--set", "dynamics.hidden=-1"], "dynamics.hidden")):
        done = cli("calibrate", "--dataset", str(hopper_random_file), "--out", str(tmp_path / "c"), *args)
        assert done.returncode == 2 and message in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1


def test_a_policy_file_brings_the_model_config_it_was_trained_with(hopper_random_file: Path, tmp_path: Path,
                                                                   cli) -> None:
    import torch

    from trials.agent.sac import SAC
    from trials.config import TrialConfig

    cfg = TrialConfig(dataset=str(hopper_random_file), pool_dir=str(tmp_path / "pools")).with_overrides(
        {"dynamics.hidden": 16, "dynamics.layers": 1, "dynamics.pool_size": 3, "dynamics.max_epochs": 2,
         "num_models": 3, "num_elites": 2, "sac.hidden": 16, "seed": 4})
    path = tmp_path / "policy.pt"  # as `mbrl-tune train` writes it
    torch.save({"actor": SAC(11, 3, cfg.sac).actor.state_dict(), "config": cfg.to_dict()}, path)
    done = cli("calibrate", "--dataset", str(hopper_random_file), "--policy", str(path), "--states", "30",
               "--horizons", "1", "2", "--out", str(tmp_path / "c"))
    assert done.returncode == 0, done.stderr
    meta = json.loads((tmp_path / "c" / "calibration.json").read_text())["meta"]
    assert (meta["policy"], meta["num_models"], meta["num_elites"], meta["seed"]) == ("sac", 3, 2, 4)
    assert meta["pool_dir"] == str(tmp_path / "pools") and "-s4-" in meta["pool_key"]
