"""Best found vs hand-tuned: re-run a sweep's best configuration and the published baseline as Ray Tune
trials, on the same seeds, with the sweep's budget.

Per dataset of the sweep, two arms on the sweep's base config (``tuner.sweep.trial_base``):

- ``baseline``: the published hand-tuned setting (``trials.baselines.hand_tuned``) applied to the base
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
new ``run-NNN``. This module imports Ray lazily: reading a plan and its finished runs needs no Ray.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from trials.config import TrialConfig, atomic_write_text
from trials.files import DamagedFileError, read_json
from tuner.errors import UsageError
from tuner.interrupts import fit
from tuner.records import RAN_OUT, TrialRecord, read_trials, restore_missing_checkpoints, trial_dirname
from tuner.storage import raise_if_disk_full, trial_failure, whole_file_fs

if TYPE_CHECKING:
    from search_spaces.space import SearchSpace
    from tuner.spec import SweepSpec

#: A plan model (compare or confirm).
PlanT = TypeVar("PlanT", bound=BaseModel)

COMPARE_DIR = "compare"
PLAN_FILE = "plan.json"
#: In each ``run-NNN``: the run keys of the Tune experiment's trials, started or not.
RUNS_FILE = "runs.json"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


class CompareArm(_Model):
    """One configuration of the comparison."""

    name: str
    """``baseline`` or ``best``."""
    setting: dict[str, Any]
    """The overrides that define it (the hand-tuned values, or the best trial's searched values)."""
    config: dict[str, Any]
    """The full trial config it runs with (its ``seed`` is replaced by each of ``seeds``)."""
    seeds: list[int]
    """Seeds it runs on."""
    sweep_trial: str | None = None
    """For ``best``: the sweep trial it comes from."""
    sweep_score: float | None = None
    """For ``best``: its score in the sweep (mean over the sweep's seeds; selected on them)."""
    sweep_seed_scores: dict[str, float] = {}
    """For ``best``: its per-seed scores in the sweep."""


class CompareDataset(_Model):
    """The comparison on one dataset of the sweep."""

    dataset: str
    """Dataset file."""
    experiment: str
    """Its experiment name (file stem): the sub-folder of the compare folder."""
    name: str
    """``<env>-<level>``: the row of the hand-tuned table."""
    sweep_seeds: list[int]
    """The sweep's seeds (the best configuration was selected on these)."""
    fresh_seeds: list[int]
    """Seeds no sweep trial ran: both arms run on them."""
    arms: list[CompareArm]
    """``baseline`` then ``best``."""


class ComparePlan(_Model):
    """What one ``mbrl-tune compare`` invocation compares; written to ``plan.json``."""

    sweep: str
    """Sweep folder."""
    source: str
    """Hand-tuned baseline source (``mopo_official`` or ``offlinerl_kit``)."""
    datasets: list[CompareDataset]
    """One entry per dataset compared."""
    skipped: dict[str, str] = {}
    """Dataset -> why it was not compared (no baseline for it, no completed trial)."""
    gpus_per_trial: float = 0.0
    """GPUs each run reserves: the sweep's (its trials' ``device`` is in the configs)."""


def compare_dir(sweep_dir: Path, source: str) -> Path:
    return Path(sweep_dir).resolve() / COMPARE_DIR / source


#: Trial-config fields that say where things are, not what runs: a sweep folder moved or unpacked elsewhere
#: must still find its runs (the dataset's identity is pinned by its content hash in ``sweep.json``).
LOCATION_FIELDS = ("dataset", "pool_dir")


def run_key(config: dict[str, Any]) -> str:
    """The identity of a run: its full trial config, normalised (defaults filled, key order fixed), less
    the :data:`LOCATION_FIELDS`."""
    full = TrialConfig.from_dict(config, "compare run").to_dict()
    return json.dumps({k: v for k, v in full.items() if k not in LOCATION_FIELDS}, sort_keys=True)


def arm_run_config(arm: CompareArm, seed: int) -> dict[str, Any]:
    return {**arm.config, "seed": seed}


def planned_runs(entry: CompareDataset) -> list[tuple[str, int, dict[str, Any]]]:
    """Every (arm, seed, run config) of one dataset's comparison, in plan order."""
    return [(arm.name, seed, arm_run_config(arm, seed)) for arm in entry.arms for seed in arm.seeds]


def run_label(arm: str, seed: int) -> str:
    """How progress lines name a run: ``best seed 2``."""
    return f"{arm} seed {seed}"


def load_plan(folder: Path) -> ComparePlan | None:
    """The stored plan, or None when there is none or it is damaged (one line says so: the next
    ``compare`` writes it again; the runs themselves are not in it)."""
    return read_plan(folder / PLAN_FILE, ComparePlan, "mbrl-tune compare SWEEP --no-run")


def read_plan(path: Path, model: type[PlanT], remedy: str) -> PlanT | None:
    """A plan file (compare or confirm), validated; None when absent or damaged (a derived file: the
    command in ``remedy`` writes it again), with one line on stderr for the latter."""
    if not path.is_file():
        return None
    try:
        plan = model.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        print(f"note: {path}: damaged plan ({exc.error_count()} errors, first: {exc.errors()[0]['msg']}); "
              f"{remedy} writes it again", file=sys.stderr)
        return None
    # ``<sweep>/<compare or confirm>/<name>/plan.json``: the sweep is where the plan is now (it may have moved).
    return plan.model_copy(update={"sweep": str(path.resolve().parent.parent.parent)})


def save_plan(plan: ComparePlan) -> Path:
    path = compare_dir(Path(plan.sweep), plan.source) / PLAN_FILE
    atomic_write_text(path, plan.model_dump_json(indent=2))
    return path


def finished_runs(folder: Path, experiment: str) -> dict[str, TrialRecord]:
    """Every finished (or diverged) run cached for ``experiment``, by :func:`run_key`."""
    out: dict[str, TrialRecord] = {}
    for run_dir in sorted((folder / experiment).glob("run-*")):
        for record in read_trials(run_dir):
            if record.status in RAN_OUT and isinstance(record.last.get("score"), (int, float)):
                out[run_key(record.trial_config().to_dict())] = record
    return out


# ---------------------------------------------------------------- planning
def fresh_seeds(sweep_seeds: Sequence[int], count: int) -> list[int]:
    """The ``count`` seeds a comparison re-evaluates on: the ones after the sweep's largest."""
    return list(range(max(sweep_seeds) + 1, max(sweep_seeds) + 1 + count))


def open_sweep(sweep_dir: Path, source: str, seeds: int, only: list[str] | None
               ) -> tuple[SweepSpec, SearchSpace, list[str]]:
    """The checks a re-run of a sweep's configurations starts with (cheap ones first: a mistyped argument
    should not wait for Ray and Ax to import), then the sweep's spec, its space and the datasets asked for
    (``only``: file stems or paths). Raises :class:`UsageError` with one line."""
    from trials.baselines import baseline_sources  # noqa: PLC0415

    if source not in baseline_sources():
        raise UsageError(f"--source {source}: unknown; known: {', '.join(baseline_sources())}")
    if seeds < 1:
        raise UsageError(f"--seeds {seeds}: need at least one fresh seed")
    if not (Path(sweep_dir) / "sweep.json").is_file():
        raise UsageError(f"{sweep_dir}: not a sweep folder (no sweep.json)")

    from search_spaces.parse import load_space  # noqa: PLC0415
    from tuner.spec import SweepSpec  # noqa: PLC0415

    spec = SweepSpec.load(sweep_dir)
    space = load_space(spec.root / "space.yaml")
    datasets = spec.datasets
    if only:
        datasets = [d for d in datasets if Path(d).stem in only or d in only]
        if not datasets:
            raise UsageError(f"--dataset {' '.join(only)}: not in this sweep; it has "
                             f"{', '.join(Path(d).stem for d in spec.datasets)}")
    return spec, space, datasets


def plan_compare(sweep_dir: Path, source: str, fresh: int, only: list[str] | None = None) -> ComparePlan:
    """The arms and seeds of every dataset of the sweep (see the module docstring)."""
    from trials.baselines import hand_tuned  # noqa: PLC0415

    spec, space, datasets = open_sweep(sweep_dir, source, fresh, only)
    from trials.dataset import load_dataset  # noqa: PLC0415
    from tuner.status import best_trials  # noqa: PLC0415  (imports Ray through tuner.sweep)
    from tuner.sweep import trial_base  # noqa: PLC0415

    new_seeds = fresh_seeds(spec.seeds, fresh)
    plan = ComparePlan(sweep=str(spec.root), source=source, datasets=[], gpus_per_trial=spec.gpus_per_trial)
    for path in datasets:
        data = load_dataset(path)
        spec.verify_dataset(path, data.content_hash())
        meta = data.meta
        name = f"{meta.env}-{meta.level}"
        base = trial_base(spec, path, space)
        try:
            published = hand_tuned(source, name)
        except ValueError as exc:
            plan.skipped[path] = str(exc)
            continue
        best = best_trials(read_trials(spec.root / spec.experiment_name(path)), 1)
        if not best:
            plan.skipped[path] = "no completed trial in the sweep yet"
            continue
        # The published point as published: enlarge the pool if it has fewer members than the setting uses.
        pool = max(base.dynamics.pool_size, int(published.get("num_models", base.num_models)))
        baseline_cfg = base.with_overrides({**published, "dynamics.pool_size": pool, "seed": spec.seeds[0]})
        record = best[0]
        best_cfg = base.with_overrides({**record.overrides, "seed": new_seeds[0]})
        plan.datasets.append(CompareDataset(
            dataset=path, experiment=spec.experiment_name(path), name=name, sweep_seeds=list(spec.seeds),
            fresh_seeds=new_seeds,
            arms=[CompareArm(name="baseline", setting=published, config=baseline_cfg.to_dict(),
                             seeds=[*spec.seeds, *new_seeds]),
                  CompareArm(name="best", setting=record.overrides, config=best_cfg.to_dict(), seeds=new_seeds,
                             sweep_trial=record.trial_id, sweep_score=float(record.last["score"]),
                             sweep_seed_scores={str(s): float(record.last[f"score_seed{s}"]) for s in record.seeds
                                                if isinstance(record.last.get(f"score_seed{s}"), (int, float))})],
        ))
    if not plan.datasets:
        reasons = "; ".join(f"{Path(d).name}: {why}" for d, why in plan.skipped.items())
        raise UsageError(f"{sweep_dir}: nothing to compare ({reasons})")
    return plan


def pending_runs(plan: ComparePlan, folder: Path) -> dict[str, list[tuple[str, int, dict[str, Any]]]]:
    """Per experiment: the (arm, seed, config) runs not finished yet, each distinct config once."""
    out: dict[str, list[tuple[str, int, dict[str, Any]]]] = {}
    for entry in plan.datasets:
        done = set(finished_runs(folder, entry.experiment))
        todo: dict[str, tuple[str, int, dict[str, Any]]] = {}
        for arm, seed, config in planned_runs(entry):
            key = run_key(config)
            if key not in done and key not in todo:
                todo[key] = (arm, seed, config)
        out[entry.experiment] = list(todo.values())
    return out


def run_grid(run_dir: Path) -> list[dict[str, Any]] | None:
    """The run configs a ``run-NNN`` was started with, in its grid's order (its ``runs.json``); None for
    a run folder written before that file existed, or whose file is damaged (then that run is not
    restored: its finished runs are kept, its unfinished ones start again in a new run)."""
    listed = Path(run_dir) / RUNS_FILE
    if not listed.is_file():
        return None
    try:
        return list(read_json(listed, "grid of run configs", "its unfinished runs start again", ("configs",))
                    ["configs"])
    except DamagedFileError as exc:
        print(f"note: {exc}", file=sys.stderr)
        return None


def unfinished_in_newest(storage: Path) -> tuple[Path, list[dict[str, Any]], set[str]] | None:
    """The newest ``run-NNN`` of an experiment's ``storage``, its grid of run configs and the keys of
    those that did not end, when some did not and the folder has its grid (``runs.json``); else None."""
    runs = sorted(Path(storage).glob("run-*"))
    grid = run_grid(runs[-1]) if runs else None
    if not grid:
        return None
    ended = {run_key(r.trial_config().to_dict()) for r in read_trials(runs[-1]) if r.status in RAN_OUT}
    left = {run_key(config) for config in grid} - ended
    return (runs[-1], grid, left) if left else None


# ---------------------------------------------------------------- running
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

    from trials.dataset import load_dataset  # noqa: PLC0415
    from trials.trainable import tune_trainable  # noqa: PLC0415

    resources = {"cpu": 1, "gpu": gpus} if gpus else {"cpu": 1}  # as the sweep's trials
    return tune.with_resources(tune.with_parameters(tune_trainable, dataset=load_dataset(dataset),
                                                    pool_dir=str(pool_dir)), resources)


def _param_space(grid: list[dict[str, Any]]) -> dict[str, Any]:
    """A comparison experiment's Tune config: a grid over full trial configs, each run on its config's one
    seed (a Tune config without ``seeds`` runs ``base.seed``)."""
    from ray import tune  # noqa: PLC0415

    return {"base": tune.grid_search(grid), "threads": 1}


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

    from tuner.trackers import tracker_callbacks  # noqa: PLC0415

    # Tune pickles its callbacks with the experiment: this one refers to nothing of this package by name,
    # so a run restored by a later version of the code still loads it.
    labels = {json.dumps(config, sort_keys=True): text for text, config in todo}
    prefix = runs.prefix

    def label(trial: Any) -> str:
        base = trial.config.get("base")
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
    from tuner.trackers import tune_settings  # noqa: PLC0415

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
