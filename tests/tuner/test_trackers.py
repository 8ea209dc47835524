"""Experiment trackers through Ray Tune's callbacks: TensorBoard events inside the sweep folder (metrics
per epoch, searched values as hyperparameters), an MLflow run per trial in a local SQLite store, an
offline W&B run per trial."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tuner.store.records import read_trials

BIN = Path(sys.executable).parent
ENV = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "RAY_AUTH_MODE": "token"}


@pytest.mark.skipif(importlib.util.find_spec("mlflow") is None or importlib.util.find_spec("wandb") is None,
                    reason="mlflow or wandb is not installed")
def test_tensorboard_mlflow_and_wandb_record_every_trial(hopper_random_file: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in ENV.items() if k not in ("MLFLOW_TRACKING_URI", "WANDB_MODE", "WANDB_API_KEY")}
    done = subprocess.run([str(BIN / "mbrl-tune"), "sweep", "--space", "quick", "--dataset", str(hopper_random_file),
                           "--trials", "2", "--storage", str(tmp_path), "--name", "t", "--preset", "tiny",
                           "--searcher", "random", "--log", "tensorboard,mlflow,wandb"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    sweep = tmp_path / "t"
    assert f"tensorboard --logdir {sweep / hopper_random_file.stem}" in done.stdout
    assert "/tmp/ray/session" not in done.stdout, "no hint into Ray's temporary folder"
    records = read_trials(sweep / hopper_random_file.stem)
    assert len(records) == 2
    for r in records:
        events = list(r.path.glob("events.out.tfevents.*"))
        assert events, r.path
        data = b"".join(e.read_bytes() for e in events)
        assert b"ray/tune/score" in data and b"ray/tune/q_mean" in data  # per-epoch metrics
        assert b"lam" in data and b"rollout.horizon" in data  # the searched values, as hyperparameters
        offline = list(r.path.glob("wandb/offline-run-*/run-*.wandb"))  # W&B, offline: no key, no network
        assert len(offline) == 1 and offline[0].read_bytes().startswith(b":W&B")  # a W&B run file per trial
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{sweep / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(f"t-{hopper_random_file.stem}")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 2
    for run in runs:  # every epoch's metrics, and the searched values as parameters
        assert {"score", "q_mean", "normalized_score"} <= set(run.data.metrics)
        assert len(client.get_metric_history(run.info.run_id, "score")) == 3  # tiny preset: 3 epochs
        assert "lam" in run.data.params and "rollout.horizon" in run.data.params


def test_unknown_or_missing_tracker_is_refused(hopper_random_file: Path, tmp_path: Path,
                                               cli: Callable[..., subprocess.CompletedProcess]) -> None:
    done = cli("sweep", "--space", "quick", "--dataset", str(hopper_random_file), "--trials", "2",
               "--storage", str(tmp_path), "--name", "t", "--log", "tensorboard,comet")  # refused before Ray
    assert done.returncode == 2 and "unknown tracker 'comet'" in done.stderr and done.stderr.count("\n") == 1
    assert not (tmp_path / "t").exists()
