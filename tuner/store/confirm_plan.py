"""Does the search's answer hold at a larger budget? Re-run a sweep's hand-tuned baseline and its K best
distinct configurations at the search budget AND at a larger one, on the same fresh seeds.

Every search over RL settings runs at a cheap fidelity; this stage measures whether its ranking survives
the budget a user will train with. Per dataset of the sweep (``mbrl-tune confirm SWEEP --top-k K --seeds N
--set epochs=200``):

- arms: ``baseline`` (the published hand-tuned setting, built exactly as ``tuner.run.compare`` builds it) and
  ``best1`` .. ``bestK``, the sweep's K best distinct configurations by the sweep's objective; with
  ``--top-k all``, every finished trial's configuration (``trial-0004`` ...) on the sweep's own seeds, to
  measure how the whole ranking transfers;
- seeds: the comparison's fresh seeds (``tuner.store.compare_plan.fresh_seeds``), so their pools are the ones the
  comparison trained (a pool is keyed by dataset, seed and architecture, never by the budget: none is
  trained twice);
- each (arm, seed) runs twice: at the search budget (the sweep's base config) and at the confirm budget
  (the base with the ``--set`` overrides; by default ten times the search's epochs). A run some earlier
  stage already made with the same config (the comparison's runs, a sweep trial on one seed) is read
  from there, not repeated.

Runs are Ray Tune trials through ``tuner.run.compare.run_pending``, cached and resumed exactly as the
comparison's: ``<sweep>/confirm/<source or all>/plan.json`` and ``<experiment>/run-NNN/``. This module is
the plan, its cost and its progress, read from the folder without Ray; :mod:`tuner.run.confirm` runs it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from trials.config import ConfigError, TrialConfig, atomic_write_text
from tuner.errors import UsageError
from tuner.store.compare_plan import COMPARE_DIR, finished_runs, fresh_seeds, open_sweep, read_plan, run_key
from tuner.store.durations import duration
from tuner.store.records import RAN_OUT, TrialRecord, read_trials
from tuner.store.spec import SweepSpec
from tuner.store.status import epoch_progress, replay_line

CONFIRM_DIR = "confirm"
PLAN_FILE = "plan.json"
#: ``--top-k all``: every finished trial, on the sweep's seeds; its folder under ``confirm/``.
ALL = "all"
#: The confirm budget when ``--set`` names neither ``epochs`` nor ``steps_per_epoch``: this many times
#: the search's epochs.
DEFAULT_FACTOR = 10
#: Keys ``--set`` may not change: they define the arms, or where things are.
FIXED_KEYS = ("seed", "dataset", "pool_dir")
#: The two budgets every arm runs at.
SEARCH, CONFIRM = "search", "confirm"
#: The hand-tuned arm (the source's published setting); every other arm is measured against it.
BASELINE = "baseline"
#: A run in progress is timed by its last this many epochs (an even number: evaluations every 2 epochs).
RECENT_EPOCHS = 10


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


class ConfirmArm(_Model):
    """One configuration of the confirmation, at both budgets."""

    name: str
    """``baseline``, ``best1`` .. ``bestK``, or (``--top-k all``) the sweep trial's name."""
    setting: dict[str, Any]
    """The overrides that define it (hand-tuned values, or the sweep trial's searched values)."""
    configs: dict[str, dict[str, Any]]
    """``search`` and ``confirm``: the full trial config at each budget (``seed`` replaced per run)."""
    sweep_trial: str | None = None
    """The sweep trial it comes from; for the baseline, the sweep's own trial of the hand-tuned setting
    (None where the sweep did not run it)."""
    sweep_score: float | None = None
    """That trial's score in the sweep (mean over the sweep's seeds; the others were selected on them)."""


class ConfirmDataset(_Model):
    """The confirmation on one dataset of the sweep."""

    dataset: str
    """Dataset file."""
    experiment: str
    """Its experiment name: the sub-folder of the confirm folder."""
    name: str
    """``<env>-<level>``."""
    seeds: list[int]
    """Seeds every arm runs on, at both budgets."""
    updates: dict[str, int]
    """``search`` and ``confirm``: SAC updates per run (epochs x steps per epoch)."""
    arms: list[ConfirmArm]
    """``baseline`` then ``best1`` ..; or every finished trial in sweep order (``--top-k all``)."""
    seconds_per_update: dict[str, float] = {}
    """Arm -> seconds per SAC update (everything included) measured in the sweep or the comparison, for
    the cost estimate; arms with no measurement are estimated by the mean of the others."""


class ConfirmPlan(_Model):
    """What one ``mbrl-tune confirm`` invocation runs; written to ``plan.json``."""

    sweep: str
    """Sweep folder."""
    source: str
    """Hand-tuned baseline source."""
    top_k: int | None
    """Best distinct configurations confirmed; None: every finished trial (``--top-k all``)."""
    overrides: dict[str, Any]
    """The confirm budget's ``--set`` overrides, as given (with the default epochs filled in)."""
    datasets: list[ConfirmDataset]
    """One entry per dataset."""
    skipped: dict[str, str] = {}
    """Dataset -> why it was not confirmed."""
    gpus_per_trial: float = 0.0
    """GPUs each run reserves: the sweep's."""


def confirm_dir(sweep_dir: Path, source: str, top_k: int | None) -> Path:
    return Path(sweep_dir).resolve() / CONFIRM_DIR / (source if top_k is not None else ALL)


def load_plan(folder: Path) -> ConfirmPlan | None:
    """The stored plan; None when there is none or it is damaged (one line: the next ``confirm`` writes it)."""
    return read_plan(folder / PLAN_FILE, ConfirmPlan, "mbrl-tune confirm SWEEP --no-run")


def save_plan(plan: ConfirmPlan) -> Path:
    path = confirm_dir(Path(plan.sweep), plan.source, plan.top_k) / PLAN_FILE
    atomic_write_text(path, plan.model_dump_json(indent=2))
    return path


def run_config(arm: ConfirmArm, budget: str, seed: int) -> dict[str, Any]:
    return {**arm.configs[budget], "seed": seed}


def _slowest_first(entry: ConfirmDataset) -> list[ConfirmArm]:
    """The arms, the slowest per update first (:func:`run_seconds`; ties, and a plan with no time measured,
    keep the plan's order)."""
    seconds = {arm.name: run_seconds(entry, arm.name, SEARCH) for arm in entry.arms}
    return sorted(entry.arms, key=lambda arm: -seconds[arm.name] if math.isfinite(seconds[arm.name]) else 0.0)


def planned_runs(entry: ConfirmDataset) -> list[tuple[str, str, int, dict[str, Any]]]:
    """Every (arm, budget, seed, run config) of one dataset, in the order they are started: the search
    budget's runs first (cheap: their table is there early), then the confirm budget's seed by seed, so that
    a confirmation cut short holds paired arms. Within a budget and seed the slowest arm starts first, so
    that runs side by side end close together instead of leaving one long run alone at the end (with
    ``--top-k all``'s 16 arms on one seed, the longest run is a fifth of the whole)."""
    arms = _slowest_first(entry)
    out = [(arm.name, SEARCH, seed, run_config(arm, SEARCH, seed)) for arm in arms for seed in entry.seeds]
    out += [(arm.name, CONFIRM, seed, run_config(arm, CONFIRM, seed)) for seed in entry.seeds for arm in arms]
    return out


def run_label(arm: str, budget: str, seed: int, updates: dict[str, int]) -> str:
    """``best1 seed 2 at 200,000 updates``."""
    return f"{arm} seed {seed} at {updates[budget]:,} updates"


def finished(plan: ConfirmPlan, entry: ConfirmDataset) -> dict[str, TrialRecord]:
    """Every finished run usable by this confirmation, by :func:`tuner.run.compare.run_key`: its own runs, the
    comparison's, and the sweep's one-seed trials (a sweep trial on seeds [s] is the run of its config on s)."""
    sweep = Path(plan.sweep)
    out: dict[str, TrialRecord] = {}
    for record in read_trials(sweep / entry.experiment):
        if record.status in RAN_OUT and len(record.seeds) == 1 and isinstance(record.last.get("score"), (int, float)):
            out[run_key(record.trial_config().to_dict())] = record
    out.update(finished_runs(sweep / COMPARE_DIR / plan.source, entry.experiment))
    out.update(finished_runs(confirm_dir(sweep, plan.source, plan.top_k), entry.experiment))
    return out


def _keyed_runs(entry: ConfirmDataset) -> list[tuple[str, tuple[str, str, int, dict[str, Any]]]]:
    """:func:`planned_runs`, each with its :func:`tuner.run.compare.run_key`."""
    return [(run_key(run[3]), run) for run in planned_runs(entry)]


def _unfinished(keyed: list[tuple[str, tuple[str, str, int, dict[str, Any]]]],
                done: Mapping[str, Any]) -> dict[str, tuple[str, str, int, dict[str, Any]]]:
    """The keyed runs whose key is not in ``done``, by key, each distinct config once."""
    todo: dict[str, tuple[str, str, int, dict[str, Any]]] = {}
    for key, run in keyed:
        if key not in done:
            todo.setdefault(key, run)
    return todo


def pending_runs(plan: ConfirmPlan, entry: ConfirmDataset) -> list[tuple[str, str, int, dict[str, Any]]]:
    """The planned runs not finished anywhere yet, each distinct config once."""
    return list(_unfinished(_keyed_runs(entry), finished(plan, entry)).values())


# ---------------------------------------------------------------- planning
def _updates(cfg: TrialConfig) -> int:
    return cfg.epochs * cfg.steps_per_epoch


def confirm_overrides(search: TrialConfig, given: dict[str, Any]) -> dict[str, Any]:
    """The confirm budget's overrides: ``given``, with ``epochs`` set to :data:`DEFAULT_FACTOR` times the
    search's when neither ``epochs`` nor ``steps_per_epoch`` is. Raises :class:`UsageError` (one line) when
    a key is fixed, a value is invalid, or the budget is not larger than the search's."""
    for key in given:
        if key in FIXED_KEYS or key.split(".", 1)[0] in FIXED_KEYS:
            raise UsageError(f"--set {key}: cannot be changed by confirm (it runs every arm on its own "
                             f"{', '.join(FIXED_KEYS)}); budget keys such as epochs=200 are")
    out = dict(given)
    if "epochs" not in out and "steps_per_epoch" not in out:
        out["epochs"] = search.epochs * DEFAULT_FACTOR
    try:
        large = search.with_overrides(out)
    except ConfigError as exc:
        raise UsageError(f"--set: {exc}") from None
    if _updates(large) <= _updates(search):
        raise UsageError(f"--set {' '.join(f'{k}={v}' for k, v in given.items())}: the confirm budget "
                         f"({_updates(large):,} SAC updates) must be larger than the search's ({_updates(search):,})")
    return out


def _seconds_per_update(records: list[TrialRecord]) -> float | None:
    times = [float(r.last["time_total_s"]) / max(int(r.last.get("epoch", 0)), 1)
             / r.trial_config().steps_per_epoch for r in records if "time_total_s" in r.last]
    return sum(times) / len(times) if times else None


def _seconds_per_seed_update(record: TrialRecord) -> float | None:
    """A sweep trial's seconds per SAC update of one seed (a trial runs its seeds side by side)."""
    speed = _seconds_per_update([record])
    return speed / max(len(record.seeds), 1) if speed is not None else None


def _sweep_trial_of(records: list[TrialRecord], base: TrialConfig, config: dict[str, Any]) -> TrialRecord | None:
    """The sweep's first trial that ran ``config`` to its end (finished or diverged), or None: where a sweep
    evaluates the hand-tuned setting itself (first, as it does unless its space clips the point)."""
    key = run_key(config)
    ran = [r for r in records if r.status in RAN_OUT and isinstance(r.last.get("score"), (int, float))
           and run_key(base.with_overrides(r.overrides).to_dict()) == key]
    return min(ran, key=lambda r: r.order, default=None)


def plan_confirm(sweep_dir: Path, source: str, top_k: int | None, seeds: int, overrides: dict[str, Any],
                 only: list[str] | None = None) -> ConfirmPlan:
    """The arms, budgets and seeds of every dataset of the sweep (see the module docstring). Raises
    :class:`UsageError` (one line) on bad input, before Ray is imported."""
    from trials.data.baselines import hand_tuned  # noqa: PLC0415

    if top_k is not None and top_k < 1:
        raise UsageError(f"--top-k {top_k}: need at least 1 (or 'all')")
    spec, space, datasets = open_sweep(sweep_dir, source, seeds, only)
    from trials.data.dataset import load_dataset  # noqa: PLC0415
    from tuner.store.spec import trial_base  # noqa: PLC0415
    from tuner.store.status import best_trials  # noqa: PLC0415

    run_seeds = list(spec.seeds) if top_k is None else fresh_seeds(spec.seeds, seeds)
    plan = ConfirmPlan(sweep=str(spec.root), source=source, top_k=top_k, overrides={}, datasets=[],
                       gpus_per_trial=spec.gpus_per_trial)
    for path in datasets:
        data = load_dataset(path)
        spec.verify_dataset(path, data.content_hash())
        name = f"{data.meta.env}-{data.meta.level}"
        base = trial_base(spec, path, space, estimates=False)
        plan.overrides = confirm_overrides(base, overrides)
        records = read_trials(spec.experiment_dir(path))
        ranked = best_trials(records, len(records), spec.metric) if top_k is not None else sorted(
            (r for r in records if r.status in RAN_OUT and isinstance(r.last.get("score"), (int, float))),
            key=lambda r: r.order)
        distinct: dict[str, TrialRecord] = {}
        for record in ranked:  # the first (best, or earliest) trial of each distinct configuration
            distinct.setdefault(run_key(base.with_overrides(record.overrides).to_dict()), record)
        chosen = list(distinct.values()) if top_k is None else list(distinct.values())[:top_k]
        if top_k is not None and len(distinct) < top_k:
            raise UsageError(f"--top-k {top_k}: {Path(path).stem} has {len(distinct)} distinct finished "
                             f"configurations; ask for at most {len(distinct)}")
        if not chosen:
            plan.skipped[path] = "no finished trial in the sweep yet"
            continue
        arms = []
        measured: dict[str, float] = {}
        if top_k is not None:
            try:
                published = hand_tuned(source, name)
            except ValueError as exc:
                plan.skipped[path] = str(exc)
                continue
            # As the comparison builds it: the published point as published, the pool enlarged if needed.
            pool = max(base.dynamics.pool_size, int(published.get("num_models", base.num_models)))
            setting = {**published, "dynamics.pool_size": pool}
            search_cfg = base.with_overrides(setting).to_dict()
            own = _sweep_trial_of(records, base, search_cfg)
            arms.append(ConfirmArm(name=BASELINE, setting=published,
                                   sweep_trial=own.trial_id if own is not None else None,
                                   sweep_score=float(own.last["score"]) if own is not None else None,
                                   configs={SEARCH: search_cfg,
                                            CONFIRM: base.with_overrides({**setting, **plan.overrides}).to_dict()}))
            keys = {run_key({**search_cfg, "seed": s}) for s in [*spec.seeds, *run_seeds]}
            compared = finished_runs(spec.root / COMPARE_DIR / source, spec.experiment_name(path))
            speed = _seconds_per_update([r for k, r in compared.items() if k in keys])
            if speed is None and own is not None:  # no comparison measured it: the sweep's own trial
                speed = _seconds_per_seed_update(own)
            if speed is not None:
                measured[BASELINE] = speed
        for rank, record in enumerate(chosen, 1):
            arm_name = f"best{rank}" if top_k is not None else record.name
            arms.append(ConfirmArm(
                name=arm_name, setting=record.overrides, sweep_trial=record.trial_id,
                sweep_score=float(record.last["score"]),
                configs={SEARCH: base.with_overrides(record.overrides).to_dict(),
                         CONFIRM: base.with_overrides({**record.overrides, **plan.overrides}).to_dict()}))
            speed = _seconds_per_seed_update(record)
            if speed is not None:
                measured[arm_name] = speed
        plan.datasets.append(ConfirmDataset(
            dataset=path, experiment=spec.experiment_name(path), name=name, seeds=run_seeds,
            updates={SEARCH: _updates(base), CONFIRM: _updates(base.with_overrides(plan.overrides))}, arms=arms,
            seconds_per_update=measured))
    if not plan.datasets:
        reasons = "; ".join(f"{Path(d).name}: {why}" for d, why in plan.skipped.items())
        raise UsageError(f"{sweep_dir}: nothing to confirm ({reasons})")
    return plan


def run_seconds(entry: ConfirmDataset, arm: str, budget: str) -> float:
    """One run's expected time, from the per-update times the sweep and the comparison measured (the arm's;
    the mean of the measured arms for the others); NaN when none was measured."""
    known = entry.seconds_per_update
    per_update = known.get(arm, sum(known.values()) / len(known) if known else math.nan)
    return per_update * entry.updates[budget]


def wall_seconds(seconds: Sequence[float], concurrency: int) -> float:
    """The wall time of runs taking ``seconds``, ``concurrency`` at a time, each started in order as a slot
    frees (as Tune starts a grid): at least the longest run, where the summed time over ``concurrency``
    would say less; NaN when any run's time is unknown."""
    if not all(math.isfinite(run) for run in seconds):
        return math.nan
    slots = [0.0] * max(concurrency, 1)
    for run in seconds:
        slots[slots.index(min(slots))] += run
    return max(slots)


# ---------------------------------------------------------------- progress
@dataclass(frozen=True)
class ConfirmProgress:
    """How far one dataset's confirmation is, read from disk in one pass."""

    ended: int
    """Planned runs finished (here, in the comparison, or as a sweep trial)."""
    planned: int
    pending: list[tuple[str, str, int, dict[str, Any]]]
    """The runs not finished, in the order the next ``confirm`` starts them (:func:`pending_runs`)."""
    runs_left: list[float]
    """Each pending run's expected time left: a run not started, :func:`run_seconds`; a run in progress, the
    epochs after its last checkpoint (where a resume picks it up) at its own pace lately (its last
    :data:`RECENT_EPOCHS` epochs: this host, this load); NaN where no run time was measured."""
    resumable: int
    """Pending runs that resume from a checkpoint instead of from the start."""
    running: list[str]
    """The runs of the newest ``run-NNN`` in progress, each with its last reported epoch."""

    @property
    def seconds_left(self) -> float:
        """The run time left, summed over the pending runs (NaN when unknown)."""
        return sum(self.runs_left)

    def wall_seconds(self, concurrency: int) -> float:
        """The wall time left, ``concurrency`` runs at a time (:func:`wall_seconds`)."""
        return wall_seconds(self.runs_left, concurrency)


def confirm_progress(plan: ConfirmPlan, entry: ConfirmDataset) -> ConfirmProgress:
    """How far ``entry``'s confirmation is: the runs finished, those left in start order, and each one's
    expected time left (see :class:`ConfirmProgress`)."""
    done = finished(plan, entry)
    keyed = _keyed_runs(entry)
    todo = _unfinished(keyed, done)
    labels = {key: run_label(arm, budget, seed, entry.updates) for key, (arm, budget, seed, _) in keyed}
    runs = sorted((confirm_dir(Path(plan.sweep), plan.source, plan.top_k) / entry.experiment).glob("run-*"))
    kept: dict[str, float] = {}  # run key -> fraction of its epochs a resume keeps (the largest, if run twice)
    paced: dict[str, float] = {}  # run key -> seconds left at its own pace lately, for a run in progress
    running = []
    for record in (r for r in (read_trials(runs[-1]) if runs else []) if r.status == "running"):
        cfg = record.trial_config()
        key = run_key(cfg.to_dict())
        running.append(f"{labels.get(key, record.name)} epoch {epoch_progress(record)}")
        epoch = min(int(record.last.get("epoch", 0)), cfg.epochs)
        kept[key] = max(kept.get(key, 0.0), (epoch - epoch % cfg.checkpoint_every) / cfg.epochs)
        recent = [float(h["time_this_iter_s"]) for h in record.history[-RECENT_EPOCHS:]
                  if isinstance(h.get("time_this_iter_s"), (int, float))]
        if recent:
            paced[key] = (1.0 - kept[key]) * cfg.epochs * sum(recent) / len(recent)
    left = [paced.get(key, (1.0 - kept.get(key, 0.0)) * run_seconds(entry, arm, budget))
            for key, (arm, budget, _, _) in todo.items()]
    return ConfirmProgress(sum(key in done for key, _ in keyed), len(keyed), list(todo.values()), left,
                           sum(kept.get(key, 0.0) > 0 for key in todo), running)


def cost_line(entry: ConfirmDataset, progress: ConfirmProgress, concurrency: int) -> str:
    """The expected wall time of the runs ``progress`` has left (:func:`confirm_progress`), ``concurrency``
    at a time, with how many of them resume from a checkpoint."""
    known = entry.seconds_per_update
    todo = progress.pending
    seconds = progress.wall_seconds(concurrency)
    resumed = f", {progress.resumable} resumed from a checkpoint" if progress.resumable else ""
    counts = {b: sum(1 for _, budget, _, _ in todo if budget == b) for b in (SEARCH, CONFIRM)}
    per_arm = ", ".join(f"{arm} {known[arm] * 1000:.0f} s" for arm in known)
    when = f"about {duration(seconds)}" if math.isfinite(seconds) else "time unknown"
    return (f"{counts[CONFIRM]} runs at {entry.updates[CONFIRM]:,} updates and {counts[SEARCH]} at "
            f"{entry.updates[SEARCH]:,}{resumed}: {when} at {concurrency} at a time (seconds per 1,000 "
            f"updates measured in the sweep: {per_arm or 'none yet'})")


def progress_lines(sweep_dir: Path, concurrency: int | None = None) -> list[str]:
    """Per confirmation stored in a sweep folder (``confirm/<source or all>/plan.json``) and dataset: runs
    finished of planned, the wall time left at ``concurrency`` runs at a time (default: the sweep's, as
    ``confirm`` runs them) and the run time it sums, and the runs in progress (:func:`confirm_progress`)."""
    lines = []
    plans = stored_plans(sweep_dir)
    at = concurrency or (SweepSpec.load(sweep_dir).concurrency if plans else 1)
    for plan in plans:
        for entry in plan.datasets:
            p = confirm_progress(plan, entry)
            text = f"confirm {confirm_dir(Path(plan.sweep), plan.source, plan.top_k).name} {entry.experiment}: "
            text += f"{p.ended}/{p.planned} runs finished"
            if p.ended < p.planned:
                text += (f", about {duration(p.wall_seconds(at))} left at {at} at a time "
                         f"({duration(p.seconds_left)} of run time)"
                         if math.isfinite(p.seconds_left) else ", time left unknown (no run time measured yet)")
            lines.append(text + (f"; in progress (last reports): {', '.join(p.running)}" if p.running else ""))
            folder = confirm_dir(Path(plan.sweep), plan.source, plan.top_k) / entry.experiment
            replayed = replay_line([r for run in sorted(folder.glob("run-*")) for r in read_trials(run)])
            if replayed:  # read here, not in confirm_progress: the time estimates need no second read
                lines.append(f"  {replayed}")
    return lines


def stored_progress(sweep_dir: Path, top_k: int | None, source: str) -> list[ConfirmProgress] | None:
    """Per dataset, the progress of the confirmation stored for ``top_k``; None before its plan is written
    (its stage has not started) or when the stored plan is for another ``top_k`` (a changed confirm block
    replaces it)."""
    plan = load_plan(confirm_dir(Path(sweep_dir), source, top_k))
    if plan is None or plan.top_k != top_k:
        return None
    return [confirm_progress(plan, entry) for entry in plan.datasets]


def stored_plans(sweep_dir: Path) -> list[ConfirmPlan]:
    """The confirmations stored in a sweep folder (top-k first, then ``all``)."""
    plans = [load_plan(folder) for folder in sorted((Path(sweep_dir) / CONFIRM_DIR).glob("*"))]
    return sorted((p for p in plans if p is not None), key=lambda p: p.top_k is None)
