"""Experiment trackers of a sweep, as Ray Tune's own logger callbacks (``--log tensorboard,mlflow,wandb``).

- ``tensorboard`` (default): TensorBoardX event files in each trial's folder inside the sweep, every
  reported metric per epoch and the trial's config (searched values included) as hyperparameters;
  ``tensorboard --logdir <sweep>``.
- ``mlflow``: one MLflow run per trial, in ``$MLFLOW_TRACKING_URI`` if set, else a local SQLite store
  ``<sweep>/mlflow.db`` (MLflow 3 retired its plain-file store); ``mlflow ui --backend-store-uri
  sqlite:///<sweep>/mlflow.db`` (the UI needs the full ``mlflow`` package); the extra ``mbrl-tune[mlflow]``
  installs the client (``mlflow-skinny``).
- ``wandb``: one Weights & Biases run per trial, offline (``<trial folder>/wandb/offline-run-*``, upload
  with ``wandb sync``) unless ``WANDB_MODE`` says otherwise; needs ``pip install 'mbrl-tune[wandb]'``.

Ray Tune's JSON and CSV loggers (``result.json``, ``progress.csv``, which the analysis reads) always run.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from ray import tune
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback, TBXLoggerCallback

from tuner.errors import UsageError

TRACKERS = ("tensorboard", "mlflow", "wandb")
_PACKAGES = {"mlflow": "mlflow", "wandb": "wandb"}


def parse_trackers(text: str) -> list[str]:
    """``tensorboard,mlflow`` -> the list; ``none`` or empty for only the JSON/CSV files."""
    kinds = [k.strip() for k in text.split(",") if k.strip() and k.strip() != "none"]
    for kind in kinds:
        if kind not in TRACKERS:
            raise UsageError(f"--log {text}: unknown tracker '{kind}'; known: {', '.join(TRACKERS)} (or none)")
        package = _PACKAGES.get(kind)
        if package and importlib.util.find_spec(package) is None:
            raise UsageError(f"--log {kind}: the '{package}' package is not installed; pip install "
                             f"'mbrl-tune[{kind}]'")
    return list(dict.fromkeys(kinds))


def tracker_callbacks(kinds: list[str], sweep_root: Path, experiment: str) -> list[tune.Callback]:
    """The logger callbacks of one experiment (Tune's automatic loggers must be off: see ``run_sweep``)."""
    callbacks: list[tune.Callback] = [JsonLoggerCallback(), CSVLoggerCallback()]
    if "tensorboard" in kinds:
        callbacks.append(TBXLoggerCallback())
    if "mlflow" in kinds:
        from ray.air.integrations.mlflow import MLflowLoggerCallback  # noqa: PLC0415  (optional package)

        uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(sweep_root / 'mlflow.db').resolve()}"
        callbacks.append(MLflowLoggerCallback(tracking_uri=uri, experiment_name=f"{sweep_root.name}-{experiment}"))
    if "wandb" in kinds:
        from ray.air.integrations.wandb import WandbLoggerCallback  # noqa: PLC0415  (optional package)

        mode = os.environ.get("WANDB_MODE", "offline")
        # Ray's callback insists on an API key even offline, where W&B never uses one.
        key = None if mode != "offline" or os.environ.get("WANDB_API_KEY") else "offline-" + "0" * 32
        callbacks.append(WandbLoggerCallback(project=sweep_root.name, group=experiment, mode=mode, api_key=key))
    return callbacks


@contextlib.contextmanager
def tune_settings(final_metric: bool = False) -> Iterator[None]:
    """Ray Tune's settings for a run of this package, put back as they were when it ends (library code
    leaves no process-wide state behind): its console boxes and TensorBoard hint off (the CLI prints its
    own lines), its automatic loggers off (the sweep passes them explicitly, :func:`tracker_callbacks`), its
    snapshot-frequency warning off (tiny trials checkpoint every few seconds), and Ax's info logs quiet.
    ``final_metric``: the searcher's metric is in a trial's last report only (an offline estimate), so Tune
    must not demand it in every report."""
    forced = {"TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
              **({"TUNE_DISABLE_STRICT_METRIC_CHECKING": "1"} if final_metric else {})}
    defaults = {"RAY_AIR_NEW_OUTPUT": "0", "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0"}
    before = {k: os.environ.get(k) for k in (*forced, *defaults)}
    ax = logging.getLogger("ax")
    level = ax.level
    os.environ.update(forced)
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    ax.setLevel(logging.WARNING)
    try:
        yield
    finally:
        ax.setLevel(level)
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
