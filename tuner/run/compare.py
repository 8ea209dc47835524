"""Best found vs hand-tuned: re-run a sweep's best configuration and the published baseline as Ray Tune
trials, on the same seeds, with the sweep's budget.

Per dataset of the sweep, two arms on the sweep's base config (``tuner.run.sweep.trial_base``):

- ``baseline``: the published hand-tuned setting (``trials.data.baselines.hand_tuned``) applied to the base
  config as published, NOT projected into the search space (7 models / 5 elites for MOPO; the pool is
  enlarged to hold them, which trains a separate pool). It runs on the sweep's seeds and on the fresh seeds.
- ``best``: the sweep's best trial, re-evaluated on FRESH seeds it was not selected on (``max(sweep seeds)
  + 1`` onwards): its in-sweep score is biased upward by the selection, the fresh-seed score is not.

So both arms share the fresh seeds. Each (arm, seed) is one Tune trial (``seeds: [s]``), all of a dataset
in one Tune experiment of ``tune_trainable`` (dataset shared with ``tune.with_parameters``), as many at
once as ``concurrency``. Results are cached in ``<sweep>/compare/<source>/``:

- ``plan.json``: the :class:`ComparePlan` (arms, their full configs, seeds) of the last invocation;
- ``<dataset stem>/run-NNN/``: one Tune experiment per invocation that had something to run, with
  ``runs.json`` (the run configs of its grid, in order).

A run is identified by its full trial config (seed included): an invocation runs only the (arm, seed)
pairs no earlier run finished, so re-running, or asking for more seeds, costs only the missing runs.
An invocation cut short (Ctrl-C, kill -9, a session's end) is continued by the next one: when the newest
``run-NNN`` can be restored and every run it left unfinished is still planned, it is restored with Tune
(each unfinished run from its latest checkpoint), and only the planned runs it does not hold go into a
new ``run-NNN``. The plan, the cache and what is left to run are :mod:`tuner.store.compare_plan` (no Ray);
this module runs them, importing Ray lazily.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trials.config import atomic_write_text
from trials.run.params import tune_space
from tuner.faults.interrupts import fit
from tuner.faults.storage import raise_if_disk_full, trial_failure, whole_file_fs
from tuner.store.compare_plan import (
    RUNS_FILE,
    ComparePlan,
    pending_runs,
    run_key,
    run_label,
    save_plan,
    unfinished_in_newest,
)
from tuner.store.records import restore_missing_checkpoints, trial_dirname


def _init_ray() -> None:
    import ray  # noqa: PLC0415

    if ray.is_initialized():
        return
    if os.environ.get("RAY_ADDRESS"):  # a cluster, as for sweeps
        ray.init(address=os.environ["RAY_ADDRESS"], log_to_driver=False)
    else:
        ray.init(include_dashboard=False, log_to_driver=False)


def _trainable(dataset: str, gpus: float, pool_dir: Path) -> Any:
    """The runs' Tune trainable: ``tune_trainable`` with the dataset shared and the sweep's pool folder where
    it is now (a restored run's stored config may name where it was), one CPU (and the sweep's GPUs)."""
    from ray import tune  # noqa: PLC0415

    from trials.data.dataset import load_dataset  # noqa: PLC0415
    from trials.run.trainable import tune_trainable  # noqa: PLC0415

    resources = {"cpu": 1, "gpu": gpus} if gpus else {"cpu": 1}  # as the sweep's trials
    return tune.with_resources(tune.with_parameters(tune_trainable, dataset=load_dataset(dataset),
                                                    pool_dir=str(pool_dir)), resources)


def _param_space(grid: list[dict[str, Any]]) -> dict[str, Any]:
    """A comparison experiment's Tune config: a grid over full trial configs, each run on its config's one
    seed (a Tune config without ``seeds`` runs ``base.seed``)."""
    from ray import tune  # noqa: PLC0415

    return tune_space(tune.grid_search(grid))


#: A run to make: its progress label (``best seed 2``) and its full trial config.
Run = tuple[str, dict[str, Any]]


@dataclass(frozen=True)
class RunSet:
    """The runs of one experiment (one dataset) of a comparison or a confirmation, and where they go."""

    tag: str
    """Progress lines start ``[<tag> <experiment>]``."""
    folder: Path
    """The comparison's (or confirmation's) folder: the experiment's ``run-NNN`` are in ``<folder>/<experiment>``."""
    experiment: str
    """The dataset's experiment name."""
    dataset: str
    """Its file."""
    pool_dir: Path
    """The sweep's pool folder."""
    gpus: float
    """GPUs each run reserves."""
    total: int
    """Runs planned in all (finished or not), for the progress lines."""

    @property
    def storage(self) -> Path:
        """Where the experiment's ``run-NNN`` folders are."""
        return self.folder / self.experiment

    @property
    def prefix(self) -> str:
        """``[compare hopper-medium-100k]``: how progress lines start."""
        return f"[{self.tag} {self.experiment}]"


def _restorable(storage: Path, pending: list[Run]) -> tuple[Path, list[dict[str, Any]], set[str]] | None:
    """:func:`unfinished_in_newest`, when every run it left is still pending (a plan since narrowed would
    otherwise run what it no longer asks for) and Tune saved enough to restore it: its experiment state
    and its grid generator's state (a driver killed before the first save leaves neither whole)."""
    from ray import tune  # noqa: PLC0415

    cut_short = unfinished_in_newest(storage)
    if cut_short is None or not cut_short[2] <= {run_key(config) for _, config in pending}:
        return None
    run_dir = cut_short[0]
    if not any(run_dir.glob("basic-variant-state-*.json")):
        return None
    return cut_short if tune.Tuner.can_restore(str(run_dir), storage_filesystem=whole_file_fs()) else None


def _resume_experiment(runs: RunSet, run_dir: Path, grid: list[dict[str, Any]]) -> None:
    """Continue a ``run-NNN`` cut short: Tune restores it (its callbacks included; the same Tune config, which
    Tune does not store) and runs what it left unfinished, each run from its latest checkpoint (a run whose
    checkpoints are gone starts over)."""
    from ray import tune  # noqa: PLC0415

    repaired = restore_missing_checkpoints(run_dir)
    tuner = tune.Tuner.restore(str(run_dir), trainable=_trainable(runs.dataset, runs.gpus, runs.pool_dir),
                               resume_errored=True, param_space=_param_space(grid), storage_filesystem=whole_file_fs())
    raise_if_disk_full(fit(tuner), run_dir)
    for copy in repaired:  # Ray deleted the ones it restored from; the others were never named
        shutil.rmtree(copy, ignore_errors=True)


def _run_experiment(runs: RunSet, todo: list[Run], concurrency: int, callbacks: list[Any]) -> Path:
    from ray import tune  # noqa: PLC0415

    from tuner.run.trackers import tracker_callbacks  # noqa: PLC0415

    # Tune pickles its callbacks with the experiment: this one refers to nothing of this package by name,
    # so a run restored by a later version of the code still loads it.
    labels = {json.dumps(config, sort_keys=True): text for text, config in todo}
    prefix = runs.prefix

    def label(trial: Any) -> str:
        base = trial.config.get("base")  # not TuneParams: the callback names no module of ours
        key = json.dumps(base, sort_keys=True) if isinstance(base, dict) else None
        return labels.get(key, trial.trial_id) if key else trial.trial_id

    class Printer(tune.Callback):
        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            result = trial.last_result or {}
            print(f"{prefix} {label(trial)}: {result.get('status', 'ended')}, score "
                  f"{result.get('score', math.nan):.2f}", flush=True)

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            print(f"{prefix} {label(trial)} failed: see {trial_failure(trial)}", flush=True)

    storage = runs.storage
    storage.mkdir(parents=True, exist_ok=True)
    name = f"run-{len(list(storage.glob('run-*'))) + 1:03d}"
    grid = [config for _, config in todo]
    atomic_write_text(storage / name / RUNS_FILE, json.dumps({"configs": grid}, indent=1))
    tuner = tune.Tuner(
        _trainable(runs.dataset, runs.gpus, runs.pool_dir),
        param_space=_param_space(grid),
        tune_config=tune.TuneConfig(num_samples=1, max_concurrent_trials=concurrency, reuse_actors=False,
                                    trial_dirname_creator=trial_dirname),
        run_config=tune.RunConfig(name=name, storage_path=str(storage), storage_filesystem=whole_file_fs(), verbose=0,
                                  callbacks=[*tracker_callbacks(["tensorboard"], storage, name), Printer(), *callbacks],
                                  checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                                  failure_config=tune.FailureConfig(max_failures=1)),
    )
    raise_if_disk_full(fit(tuner), storage / name)  # Interrupted: stop here, not at the next experiment
    return storage / name


def run_pending(runs: RunSet, todo: list[Run], concurrency: int, callbacks: list[Any] | None = None) -> None:
    """Make the runs ``todo`` of one experiment (none of them finished): continue the newest ``run-NNN``
    when it was cut short and everything it left is still wanted, then start the rest in a new one."""
    if not todo:
        print(f"{runs.prefix} all {runs.total} runs cached in {runs.storage}", flush=True)
        return
    from tuner.run.trackers import tune_settings  # noqa: PLC0415

    with tune_settings():
        _run_pending(runs, todo, concurrency, callbacks)


def _run_pending(runs: RunSet, todo: list[Run], concurrency: int, callbacks: list[Any] | None) -> None:
    _init_ray()
    start = time.perf_counter()
    cut_short = _restorable(runs.storage, todo)
    if cut_short is not None:
        run_dir, grid, left = cut_short
        print(f"{runs.prefix} resuming {len(left)} of {runs.total} runs in {run_dir}", flush=True)
        _resume_experiment(runs, run_dir, grid)
        todo = [run for run in todo if run_key(run[1]) not in left]  # a run that failed again waits
    if todo:
        print(f"{runs.prefix} running {len(todo)} of {runs.total} runs ({concurrency} at a time)", flush=True)
        _run_experiment(runs, todo, concurrency, callbacks or [])
    print(f"{runs.prefix} done in {time.perf_counter() - start:.0f} s: {runs.storage}", flush=True)


def run_compare(plan: ComparePlan, concurrency: int, callbacks: list[Any] | None = None) -> dict[str, int]:
    """Write the plan and run every missing (arm, seed); returns the runs started per experiment.
    ``callbacks``: extra Ray Tune callbacks of the runs."""
    folder = save_plan(plan).parent
    for path, why in plan.skipped.items():
        print(f"note: {Path(path).name} not compared: {why}", file=sys.stderr)
    pending = pending_runs(plan, folder)
    started: dict[str, int] = {}
    for entry in plan.datasets:
        todo = [(run_label(arm, seed), config) for arm, seed, config in pending[entry.experiment]]
        started[entry.experiment] = len(todo)
        runs = RunSet(tag="compare", folder=folder, experiment=entry.experiment, dataset=entry.dataset,
                      pool_dir=Path(plan.sweep) / "pools", gpus=plan.gpus_per_trial,
                      total=sum(len(arm.seeds) for arm in entry.arms))
        run_pending(runs, todo, concurrency, callbacks)
    return started
