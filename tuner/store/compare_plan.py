"""The comparison's plan on disk: what ``mbrl-tune compare`` compares (:class:`ComparePlan`), where its runs
are cached (``<sweep>/compare/<source>/``), which of them finished, and what a new invocation still has to
run. Ray-free: ``status``, the study's status and the analysis read it; :mod:`tuner.run.compare` runs what
it plans (the layout and the rules are in that module's docstring).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from trials.config import TrialConfig, atomic_write_text
from trials.files import DamagedFileError, read_json
from tuner.errors import UsageError
from tuner.store.records import RAN_OUT, TrialRecord, read_trials
from tuner.store.spec import MEASURE_FIELDS

if TYPE_CHECKING:
    from search_spaces.space import SearchSpace
    from tuner.store.spec import SweepSpec

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
    the :data:`LOCATION_FIELDS` and :data:`MEASURE_FIELDS`."""
    full = TrialConfig.from_dict(config, "compare run").to_dict()
    return json.dumps({k: v for k, v in full.items() if k not in (*LOCATION_FIELDS, *MEASURE_FIELDS)},
                      sort_keys=True)


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
    from trials.data.baselines import baseline_sources  # noqa: PLC0415

    if source not in baseline_sources():
        raise UsageError(f"--source {source}: unknown; known: {', '.join(baseline_sources())}")
    if seeds < 1:
        raise UsageError(f"--seeds {seeds}: need at least one fresh seed")
    if not (Path(sweep_dir) / "sweep.json").is_file():
        raise UsageError(f"{sweep_dir}: not a sweep folder (no sweep.json)")

    from search_spaces.parse import load_space  # noqa: PLC0415
    from tuner.store.spec import SweepSpec  # noqa: PLC0415

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
    from trials.data.baselines import hand_tuned  # noqa: PLC0415

    spec, space, datasets = open_sweep(sweep_dir, source, fresh, only)
    from trials.data.dataset import load_dataset  # noqa: PLC0415
    from tuner.store.spec import trial_base  # noqa: PLC0415
    from tuner.store.status import best_trials  # noqa: PLC0415

    new_seeds = fresh_seeds(spec.seeds, fresh)
    plan = ComparePlan(sweep=str(spec.root), source=source, datasets=[], gpus_per_trial=spec.gpus_per_trial)
    for path in datasets:
        data = load_dataset(path)
        spec.verify_dataset(path, data.content_hash())
        meta = data.meta
        name = f"{meta.env}-{meta.level}"
        base = trial_base(spec, path, space, estimates=False)
        try:
            published = hand_tuned(source, name)
        except ValueError as exc:
            plan.skipped[path] = str(exc)
            continue
        best = best_trials(read_trials(spec.root / spec.experiment_name(path)), 1, spec.metric)
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
