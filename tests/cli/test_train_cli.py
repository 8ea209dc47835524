"""`mbrl-tune train` end to end on a small generated hopper dataset."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess

import pytest
import torch

from trials.config import TrialConfig

CLI = [str(Path(sys.executable).parent / "mbrl-tune")]


def small_config(dataset: Path, tmp_path: Path) -> Path:
    cfg = TrialConfig(dataset=str(dataset), pool_dir=str(tmp_path / "pools"), num_models=3,
                      num_elites=2, epochs=2, steps_per_epoch=50, eval_episodes=2,
                      rollout={"batch_size": 300, "horizon": 2, "freq": 25},
                      dynamics={"pool_size": 3, "hidden": 32, "layers": 2, "max_epochs": 3},
                      sac={"hidden": 32, "batch_size": 64})
    return cfg.save(tmp_path / "trial.yaml")


def test_train_runs_end_to_end(hopper_random_file: Path, tmp_path: Path) -> None:
    path = small_config(hopper_random_file, tmp_path)
    out = tmp_path / "out"
    done = subprocess.run([*CLI, "train", "--config", str(path), "--set", "penalty=max_pairwise_diff",
                           "--out", str(out), "--quiet"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "finished: normalised score" in done.stdout
    results = json.loads((out / "results.json").read_text())
    assert math.isfinite(results["normalized_score"]) and results["status"] == "finished"
    assert results["config"]["penalty"] == "max_pairwise_diff"
    assert len(results["history"]) == 2 and set(results["phase_seconds"]) >= {"pool", "rollout", "sac", "eval"}
    assert "actor" in torch.load(out / "policy.pt", weights_only=True)
    # The recorded config re-runs as it is.
    assert TrialConfig.from_dict(results["config"]).penalty == "max_pairwise_diff"


def test_train_rejects_bad_config_in_one_line(tmp_path: Path, cli: Callable[..., CompletedProcess]) -> None:
    path = TrialConfig(dataset="x.hdf5").save(tmp_path / "trial.yaml")
    done = cli("train", "--config", str(path), "--set", "rollout.horizon=-3")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "field 'rollout.horizon': value -3" in done.stderr
    missing = cli("train", "--config", str(path))
    assert missing.returncode == 2 and "x.hdf5: file not found" in missing.stderr


@pytest.mark.parametrize("method", [
    ["penalty=mobile", "lam=0.5", "mobile_samples=3"],
    ["penalty=none", "sac.num_critics=5", "sac.eta=1.0"],  # RAVL
    ["penalty=none", "dynamics.kind=true", "sac.num_critics=4", "sac.eta=1.0"],  # RAVL in the true simulator
], ids=["mobile", "ravl", "ravl-true-dynamics"])
def test_train_runs_each_newer_method(method: list[str], hopper_random_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    sets = [arg for item in method for arg in ("--set", item)]
    done = subprocess.run([*CLI, "train", "--config", str(small_config(hopper_random_file, tmp_path)), *sets,
                           "--out", str(out), "--quiet"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    results = json.loads((out / "results.json").read_text())
    assert results["status"] == "finished" and all(math.isfinite(h["q_mean"]) for h in results["history"])
    overrides = dict(m.split("=", 1) for m in method)
    assert results["config"]["penalty"] == overrides["penalty"]
    if "dynamics.kind" in overrides:
        assert results["pool"]["key"] == "true-dynamics" and not (tmp_path / "pools").exists()
    else:
        assert results["history"][-1]["penalty_mean"] > 0 or overrides["penalty"] == "none"


def test_true_dynamics_refuses_an_ensemble_penalty_in_one_line(hopper_random_file: Path, tmp_path: Path,
                                                               cli: Callable[..., CompletedProcess]) -> None:
    done = cli("train", "--config", str(small_config(hopper_random_file, tmp_path)), "--set", "dynamics.kind=true",
               "--set", "penalty=max_aleatoric", "--out", str(tmp_path / "o"))
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "penalty 'max_aleatoric' needs a learned ensemble" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "o").exists()
