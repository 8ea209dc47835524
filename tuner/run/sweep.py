"""The sweep driver: one Ray Tune experiment per dataset, trials of the trial engine proposed by a
searcher over a search space, with the hand-tuned baseline always evaluated first.

Folder layout of a sweep (``<storage>/<name>/``):

- ``sweep.json``: the :class:`SweepSpec` (everything needed to resume or re-run it);
- ``space.yaml``: a copy of the search space file as it was when the sweep started;
- ``pools/``: the shared dynamics pools and ``trainings.log`` (one line per pool training);
- ``<dataset stem>/``: the Ray Tune experiment of that dataset (trial folders with ``params.json``,
  ``result.json``, checkpoints; the searcher's state);
- ``.driver.lock``: held by the running driver, so a second ``resume`` is refused.
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ray
from filelock import FileLock, Timeout
from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler
from tqdm import tqdm

from search_spaces.parse import load_space
from search_spaces.space import SearchSpace, SearchSpaceError
from trials.config import EstimateConfig, TrialConfig, apply_overrides, has_key
from trials.data.baselines import agent_settings, hand_tuned
from trials.data.dataset import Dataset, dataset_path, load_dataset
from trials.measure.offline import judge_seed
from trials.models.pool import is_stored
from trials.run.params import searched, tune_space
from trials.run.trainable import tune_trainable
from tuner.errors import SweepError
from tuner.faults.interrupts import fit
from tuner.faults.recovery import StateBackup, backup_state, follow_move, match_trial_count, repair_state
from tuner.faults.storage import raise_if_disk_full, trial_failure, whole_file_fs
from tuner.run.pools import PoolJob, collect_spare, train_pools
from tuner.run.trackers import tracker_callbacks, tune_settings
from tuner.search.registry import SEARCHERS, WarmStartPoint, make_searcher
from tuner.store.records import STOPPED, mark_stopped, read_trials, restore_missing_checkpoints, trial_dirname
from tuner.store.spec import OBJECTIVES, SPEC_FILE, Objective, SweepSpec, trial_base

MODE = "max"


def check_space_fits(space: SearchSpace, base: TrialConfig) -> None:
    """Fail before Ray starts if a searched key or fixed value is not a trial-config field."""
    fields = set(_flat_keys(base.to_dict()))
    for key in [p.key for p, _, _ in space.iter_parameters()] + list(space.fixed):
        if key not in fields:
            raise SweepError(f"{space.source}: parameter '{key}' is not a trial config field")


def _flat_keys(data: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for k, v in data.items():
        out.append(prefix + k)
        if isinstance(v, dict):
            out.extend(_flat_keys(v, f"{prefix}{k}."))
    return out


def warm_start_points(spec: SweepSpec, dataset: Dataset, space: SearchSpace) -> list[WarmStartPoint]:
    """The hand-tuned baseline (projected into the space, unscored, evaluated first), then the trials of
    earlier sweeps on the same dataset content scored by this sweep's objective."""
    points: list[WarmStartPoint] = []
    name = f"{dataset.meta.env}-{dataset.meta.level}"
    try:
        baseline = hand_tuned(spec.baselines, name)
    except ValueError as exc:
        print(f"note: no hand-tuned baseline to start from ({exc})", file=sys.stderr)
    else:
        points.append((space.project(baseline), None))
    for previous in spec.warm_start:
        points.extend(previous_results(Path(previous), dataset, space, spec.metric, spec.base.get("estimate")))
    return points


def previous_results(sweep_dir: Path, dataset: Dataset, space: SearchSpace, metric: str = "score",
                     estimate: dict[str, Any] | None = None) -> list[WarmStartPoint]:
    """Finished trials of an earlier sweep on the same dataset content that lie in ``space``, with their
    ``metric`` (those that did not report it are left out). An offline estimate's values are comparable only
    under the same estimate settings (``estimate``: FQE steps, discount, judge seed): a sweep whose
    settings differ contributes nothing."""
    old = SweepSpec.load(sweep_dir)
    if metric != "score" and _estimate_settings(old.base.get("estimate")) != _estimate_settings(estimate):
        print(f"note: --warm-start {sweep_dir}: its offline estimates were made with other settings; not used",
              file=sys.stderr)
        return []
    digest = dataset.content_hash()
    points: list[WarmStartPoint] = []
    for ds_path in old.datasets:
        if load_dataset(ds_path).content_hash() != digest:
            continue
        for record in read_trials(old.root / old.experiment_name(ds_path)):
            score = record.last.get(metric)
            if record.last.get("status") != "finished" or score is None or not math.isfinite(score):
                continue
            try:
                space.encode(record.overrides)
            except ValueError:
                continue  # outside this space
            points.append((record.overrides, float(score)))
    return points


def _estimate_settings(block: dict[str, Any] | None) -> tuple[Any, ...]:
    """What makes two sweeps' offline estimates comparable (the estimators reported aside)."""
    cfg = EstimateConfig.model_validate(block or {})
    return cfg.fqe_steps, cfg.gamma, cfg.judge_seed


def _scheduler(spec: SweepSpec, base: TrialConfig) -> TrialScheduler:
    if spec.early_stop == "asha":
        return ASHAScheduler(time_attr="epoch", metric=spec.metric, mode=MODE, max_t=base.epochs,
                             grace_period=max(1, base.epochs // 8), reduction_factor=3)
    return FIFOScheduler()


class ProgressPrinter(tune.Callback):
    """One line per finished trial with the best score so far, under a progress bar over the trials
    (on a terminal; logs get the lines only)."""

    def __init__(self, label: str, total: int, metric: str = "score") -> None:
        self.label, self.total, self.metric = label, total, metric
        self.done = 0
        self.best: tuple[float, dict[str, Any]] | None = None
        self._bar: tqdm | None = None

    def __getstate__(self) -> dict[str, Any]:  # Tune stores its callbacks with the experiment
        return {**self.__dict__, "_bar": None}

    def _progress(self, trials: list) -> None:
        ended = sum(t.status in ("TERMINATED", "ERROR") for t in trials)
        if getattr(self, "_bar", None) is None:
            self._bar = tqdm(total=self.total, desc=self.label, unit="trial", disable=not sys.stderr.isatty(),
                             leave=False)
        assert self._bar is not None
        self._bar.n = min(ended, self.total)
        self._bar.set_postfix(best=f"{self.best[0]:.1f}" if self.best else "-", running=sum(
            t.status == "RUNNING" for t in trials))
        self._bar.refresh()

    def _line(self, text: str) -> None:
        bar = getattr(self, "_bar", None)
        if bar is not None and not bar.disable:
            bar.write(text)
        else:
            print(text, flush=True)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._progress(trials)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.done += 1
        result = trial.last_result or {}
        score = result.get("score", float("nan"))
        objective = getattr(self, "metric", "score")  # a callback restored from an older sweep has none
        # Over every trial Tune holds, not only those this run saw end: a resumed sweep's best may be older.
        for t in {id(t): t for t in [*trials, trial]}.values():
            value = (t.last_result or {}).get(objective)
            if (t is trial or t.status == "TERMINATED") and isinstance(value, int | float) and math.isfinite(value) \
                    and (self.best is None or value > self.best[0]):
                self.best = (float(value), searched(t.config))
        value = "-" if not self.best else (f"{self.best[0]:.1f}" if objective == "score"
                                           else f"{objective} {self.best[0]:.4g}")
        best = f"{value} {self.best[1]}" if self.best else "-"
        status = STOPPED if _stopped_early(result) else result.get("status", "ended")
        estimate = "" if objective == "score" else f", {objective} {result.get(objective, float('nan')):.4g}"
        self._line(f"[{self.label}] trial {trial.trial_id} {status}: score {score:.1f}{estimate} "
                   f"(epoch {result.get('epoch', 0)}) | best so far {best}")
        self._progress(trials)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._line(f"[{self.label}] trial {trial.trial_id} failed: see {trial_failure(trial)}")
        self._progress(trials)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        bar = getattr(self, "_bar", None)
        if bar is not None:
            bar.close()


def _stopped_early(result: dict[str, Any]) -> bool:
    """A completed trial whose last report still says running was ended by the scheduler."""
    return result.get("status") == "running"


class EarlyStopMarker(tune.Callback):
    """Marks the folder of each trial the scheduler ended early (its own reports cannot say so)."""

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        result = trial.last_result or {}
        if _stopped_early(result):
            mark_stopped(Path(trial.path), int(result.get("epoch", 0)))


def _trainable(dataset: Dataset, gpus: float, pool_dir: Path) -> Any:
    resources = {"cpu": 1, "gpu": gpus} if gpus else {"cpu": 1}
    return tune.with_resources(tune.with_parameters(tune_trainable, dataset=dataset, pool_dir=str(pool_dir)),
                               resources)


def run_sweep(spec: SweepSpec, resume: bool = False, callbacks: list[tune.Callback] | None = None,
              spare_pool_seeds: Sequence[int] = ()) -> dict[str, Path]:
    """Run (or resume) every dataset's experiment to its trial count; returns experiment folders.
    ``callbacks`` are extra Tune callbacks of a new experiment (a restored one keeps those it started with,
    as Ray Tune stores them with the experiment). ``spare_pool_seeds``: seeds of pools a later stage will
    load, trained on task slots the sweep's own pool trainings leave idle (:mod:`tuner.run.pools`)."""
    with tune_settings(final_metric=spec.metric != "score"):
        return _run_sweep(spec, resume, callbacks, spare_pool_seeds)


def _run_sweep(spec: SweepSpec, resume: bool, callbacks: list[tune.Callback] | None,
               spare_pool_seeds: Sequence[int]) -> dict[str, Path]:
    root = spec.root
    root.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(root / ".driver.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise SweepError(f"{root}: sweep is already running (another driver holds {root / '.driver.lock'})") from None
    try:
        space_copy = root / "space.yaml"
        if not resume:
            shutil.copyfile(spec.space_file, space_copy)
            spec.save()
        space = load_space(space_copy)
        datasets = {d: load_dataset(d) for d in spec.datasets}
        for d, ds in datasets.items():  # a changed dataset is refused before Ray starts
            spec.verify_dataset(d, ds.content_hash())
        if not ray.is_initialized():
            if os.environ.get("RAY_ADDRESS"):  # a cluster: `ray job submit`, or RAY_ADDRESS set by the user
                ray.init(address=os.environ["RAY_ADDRESS"], log_to_driver=False)
            else:  # a local Ray instance of this process
                ray.init(include_dashboard=False, log_to_driver=False)
        bases = {d: trial_base(spec, d, space) for d in spec.datasets}
        for base in bases.values():
            check_space_fits(space, base)
        refs = {d: ray.put(ds) for d, ds in datasets.items()}
        seeds = [*spec.seeds, *judge_seeds(spec, bases)]
        spare = train_pools([PoolJob(refs[d], seed, bases[d]) for d in spec.datasets for seed in seeds],
                            [PoolJob(refs[d], seed, bases[d]) for d in spec.datasets for seed in spare_pool_seeds
                             if seed not in seeds and not is_stored(datasets[d], seed, bases[d].dynamics,
                                                                         spec.pool_dir)],
                            spec.gpus_per_trial)
        out = {}
        for d in spec.datasets:
            out[d] = _run_experiment(spec, d, datasets[d], bases[d], space, resume, callbacks or [])
        collect_spare(spare)
        return out
    finally:
        lock.release()


def _run_experiment(spec: SweepSpec, dataset_path: str, dataset: Dataset, base: TrialConfig,
                    space: SearchSpace, resume: bool, callbacks: list[tune.Callback]) -> Path:
    exp_dir = spec.root / spec.experiment_name(dataset_path)
    label = spec.experiment_name(dataset_path)
    printer = ProgressPrinter(label, spec.trials, spec.metric)
    start = time.perf_counter()
    repaired: list[Path] = []
    if resume and exp_dir.is_dir():
        for note in repair_state(exp_dir):  # a damaged state file: the last good copy, or a one-line refusal
            print(f"[{label}] {note}", flush=True)
        for note in follow_move(exp_dir):  # a moved sweep: new trials go where the sweep is now
            print(f"[{label}] {note}", flush=True)
        for note in match_trial_count(exp_dir):  # a full disk that kept the trial list but not the count
            print(f"[{label}] {note}", flush=True)
    storage = whole_file_fs()  # a full disk never leaves Tune's rewritten files cut short (tuner.faults.storage)
    if resume and tune.Tuner.can_restore(str(exp_dir), storage_filesystem=storage):
        print(f"[{label}] resuming {exp_dir}", flush=True)
        backup_state(exp_dir)
        repaired = restore_missing_checkpoints(exp_dir)
        tuner = tune.Tuner.restore(str(exp_dir), trainable=_trainable(dataset, spec.gpus_per_trial, spec.pool_dir),
                                   resume_errored=True, storage_filesystem=storage)
    else:
        searcher = make_searcher(spec.searcher, space, spec.metric, MODE, seed=spec.search_seed,
                                 num_init_trials=spec.num_init_trials,
                                 warm_start=warm_start_points(spec, dataset, space),
                                 max_concurrent=spec.concurrency)
        tuner = tune.Tuner(
            _trainable(dataset, spec.gpus_per_trial, spec.pool_dir),
            param_space=tune_space(base.to_dict(), spec.seeds),
            tune_config=tune.TuneConfig(search_alg=searcher, scheduler=_scheduler(spec, base),
                                        num_samples=spec.trials, max_concurrent_trials=spec.concurrency,
                                        # reuse_actors: 0.14 s instead of 2.3 s of Ray overhead per trial
                                        reuse_actors=True, trial_dirname_creator=trial_dirname),
            run_config=tune.RunConfig(
                name=exp_dir.name, storage_path=str(spec.root), storage_filesystem=storage, verbose=0,
                callbacks=[*tracker_callbacks(spec.trackers, spec.root, exp_dir.name), EarlyStopMarker(), printer,
                           StateBackup(exp_dir), *callbacks],
                checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                failure_config=tune.FailureConfig(max_failures=1),
            ),
        )
    if not resume:
        hint = f"; tensorboard --logdir {exp_dir}" if "tensorboard" in spec.trackers else ""
        print(f"[{label}] {spec.trials} trials, {spec.concurrency} at a time, in {exp_dir}{hint}", flush=True)
    result = fit(tuner)  # Interrupted: stop here, not at the next dataset
    raise_if_disk_full(result, spec.root)
    for copy in repaired:  # Ray deleted the ones it restored from; the others were never named
        shutil.rmtree(copy, ignore_errors=True)
    print(f"[{label}] {spec.trials} trials in {time.perf_counter() - start:.0f} s; results in {exp_dir}",
          flush=True)
    return exp_dir


def judge_seeds(spec: SweepSpec, bases: dict[str, TrialConfig]) -> list[int]:
    """Seeds of the pools the trials' model estimate rolls out in (``trials.measure.offline``): trained
    with the sweep's own pools, before any trial needs one."""
    return sorted({judge_seed(b.estimate, spec.seeds) for b in bases.values() if "model" in b.estimate.kinds})


def with_objective(base: dict[str, Any], objective: Objective, early_stop: str) -> dict[str, Any]:
    """``base`` with the offline estimate the objective reads added to ``estimate.kinds`` (others set with
    ``--set estimate.kinds=[fqe,model]`` are kept, and reported too). :class:`SweepError` when the
    objective cannot be used with ``early_stop``."""
    if objective not in OBJECTIVES:
        raise SweepError(f"--objective {objective}: unknown; allowed: {', '.join(OBJECTIVES)}")
    if objective == "simulator":
        return base
    if early_stop != "none":
        raise SweepError(f"--early-stop {early_stop} with --objective {objective}: early stopping reads the "
                         f"objective at every epoch, and an offline estimate exists only after a trial's last; "
                         f"use --early-stop none")
    kinds = list((base.get("estimate") or {}).get("kinds") or [])
    return apply_overrides(base, {"estimate.kinds": sorted({*kinds, objective})})


def check_devices(device: str, gpus_per_trial: float) -> None:
    """The trials' device against the GPUs Ray reserves for each (:class:`SweepError`, one line): Ray shows a
    trial only the GPUs it reserved, numbered from ``cuda:0``, and none without a reservation."""
    if device.startswith("cuda") and gpus_per_trial <= 0:
        raise SweepError(f"--set device={device}: give the trials a GPU with --gpus-per-trial (1, or 0.5 to "
                         f"share one between two trials)")
    if device.startswith("cuda:") and device != "cuda:0":
        raise SweepError(f"--set device={device}: under Ray a trial sees only the GPU it reserved, as cuda:0; "
                         f"use device=cuda")
    if gpus_per_trial > 0 and not device.startswith("cuda"):
        raise SweepError(f"--gpus-per-trial {gpus_per_trial:g} with device={device}: the reserved GPUs would sit "
                         f"idle; add --set device=cuda, or leave --gpus-per-trial out")


def with_source_agent(base: dict[str, Any], source: str) -> dict[str, Any]:
    """``base`` with the baseline source's agent settings (``sac.*``) for every key ``base`` leaves unset:
    the sweep's trials then run the agent the baseline was published with, so its first trial is the
    baseline exactly. Explicit settings of ``base`` (and later ``--set``) win."""
    try:
        settings = agent_settings(source)
    except ValueError as exc:
        raise SweepError(f"--baselines {source}: {exc}") from None
    missing = {k: v for k, v in settings.items() if not has_key(base, k)}
    return apply_overrides(base, missing)


def new_spec(name: str, storage: str, space_file: str, datasets: list[str], trials: int, concurrency: int,
             seeds: list[int], searcher: str, num_init_trials: int, early_stop: str, baselines: str,
             warm_start: list[str], base: dict[str, Any], overrides: dict[str, Any], search_seed: int,
             gpus_per_trial: float = 0.0, trackers: list[str] | None = None,
             objective: Objective = "simulator") -> SweepSpec:
    """Validate the CLI's inputs into a spec (no files written)."""
    if searcher not in SEARCHERS:
        raise SweepError(f"--searcher {searcher}: unknown; known: {', '.join(SEARCHERS)}")
    datasets = [str(Path(dataset_path(d)).resolve()) for d in datasets]  # d4rl: names -> their local files
    hashes = {d: load_dataset(d).content_hash() for d in datasets}  # fails early, one line
    try:
        space = load_space(space_file)
    except SearchSpaceError as exc:
        raise SweepError(str(exc)) from None
    merged = with_objective(apply_overrides(with_source_agent(base, baselines), overrides), objective, early_stop)
    cfg = TrialConfig.from_dict({**merged, "dataset": datasets[0]}, "sweep base config")
    if cfg.estimate.kinds:
        try:
            judge_seed(cfg.estimate, seeds)
        except ValueError as exc:
            raise SweepError(str(exc)) from None
    check_space_fits(space, cfg)
    check_devices(cfg.device, gpus_per_trial)
    root = Path(storage).resolve() / name
    if (root / SPEC_FILE).exists():
        raise SweepError(f"{root}: a sweep of that name exists; resume it with 'mbrl-tune resume {root}' "
                         f"or choose another --name")
    for w in warm_start:
        SweepSpec.load(w)
    return SweepSpec(name=name, storage=storage, space_file=str(Path(space_file).resolve()),
                     datasets=datasets, trials=trials,
                     concurrency=concurrency, seeds=seeds, searcher=searcher, num_init_trials=num_init_trials,
                     early_stop=early_stop, baselines=baselines, warm_start=warm_start, base=merged,
                     search_seed=search_seed, gpus_per_trial=gpus_per_trial, dataset_hashes=hashes,
                     objective=objective,
                     trackers=["tensorboard"] if trackers is None else trackers)
