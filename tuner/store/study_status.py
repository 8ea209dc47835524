"""``mbrl-tune status STUDY_FOLDER``: where a study stands, read from its folder while it runs or after it
stopped (it runs and changes nothing): per dataset each stage done (with its wall clock), not finished
(what is missing, and the trials or comparison runs in progress with the epoch of their last report)
or not started; the pool trainings in progress with the epoch their last saved progress reached; the
report; and the study's remaining-time estimate."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from trials.files import DamagedFileError
from trials.models.dynamics import saved_fit_epoch
from trials.models.pool import trainings_in_progress
from tuner.store.compare_plan import load_plan, planned_runs, run_key, run_label
from tuner.store.durations import duration
from tuner.store.records import read_trials
from tuner.store.spec import SPEC_FILE
from tuner.store.status import epoch_progress, superseded
from tuner.store.study_folder import (
    STAGE_NAMES,
    STAGES_FILE,
    STUDY_FILE,
    Stages,
    compare_runs,
    eta_line,
    finished_compare_runs,
    stored_study,
    sweep_dir,
    sweep_missing,
)
from tuner.store.study_spec import StudyDataset, StudyError, StudySpec


def is_study_folder(path: Path) -> bool:
    """A study folder holds the ``study.yaml`` its first run wrote (a sweep folder holds ``sweep.json``)."""
    return (path / STUDY_FILE).is_file()


def _missing(stage: str, spec: StudySpec, ds: StudyDataset, folder: Path) -> str:
    """What an unfinished stage still lacks, where the folder tells."""
    if stage == "sweep" and (sweep_dir(folder, ds) / SPEC_FILE).is_file():
        return sweep_missing(spec, ds, folder) or "every trial ended; the stage ends at the next run"
    if stage == "compare":
        return f"{len(finished_compare_runs(spec, folder, ds))}/{compare_runs(spec)} runs finished"
    if stage == "confirm" and spec.confirm is not None:
        from tuner.store.confirm_plan import stored_progress  # noqa: PLC0415

        progress = stored_progress(sweep_dir(folder, ds), spec.confirm.k, spec.baselines) or []
        ended, total = sum(p.ended for p in progress), sum(p.planned for p in progress)
        return f"{ended}/{total} runs finished" if total else ""
    return ""


def _in_progress(stage: str, spec: StudySpec, ds: StudyDataset, folder: Path) -> list[str]:
    """The sweep trials or comparison runs of an unfinished stage that have reported and not ended, each
    with its last reported epoch (a stopped study's: where the next run picks them up)."""
    stem = Path(ds.path).stem
    if stage == "sweep":
        records = read_trials(sweep_dir(folder, ds) / stem)
        gone = superseded(records)
        return [f"{r.name} epoch {epoch_progress(r)}" for r in records if r.status == "running" and r.path not in gone]
    if stage == "compare":
        compare = sweep_dir(folder, ds) / "compare" / spec.baselines
        plan, runs = load_plan(compare), sorted((compare / stem).glob("run-*"))
        if plan is None or not runs:  # each run of the stage is a new run-NNN: only the newest is in progress
            return []
        labels = {run_key(config): run_label(arm, seed) for entry in plan.datasets
                  for arm, seed, config in planned_runs(entry)}
        return [f"{labels.get(run_key(r.trial_config().to_dict()), r.name)} epoch {epoch_progress(r)}"
                for r in read_trials(runs[-1]) if r.status == "running"]
    if stage == "confirm" and spec.confirm is not None:
        from tuner.store.confirm_plan import progress_lines  # noqa: PLC0415

        return progress_lines(sweep_dir(folder, ds), spec.confirm.concurrency or spec.concurrency)
    return []


def _pool_trainings(spec: StudySpec, folder: Path) -> list[str]:
    """One line per pool training in progress (its progress file), with the epoch it saved."""
    lines = []
    for ds in spec.datasets:
        for pool, progress in trainings_in_progress(sweep_dir(folder, ds) / "pools").items():
            epoch = saved_fit_epoch(progress)
            lines.append(f"  {Path(ds.path).stem}: {pool} "
                         + (f"saved at epoch {epoch}" if epoch is not None else "(progress file unreadable)"))
    return lines


def study_status(folder: Path) -> str:
    """The status text of the study in ``folder``; a damaged ``study.yaml`` is refused in one line."""
    try:
        spec = stored_study(folder)
    except (UnicodeDecodeError, yaml.YAMLError, ValidationError, TypeError, DamagedFileError) as exc:
        why = "cut short" if isinstance(exc, DamagedFileError) else type(exc).__name__
        raise StudyError(f"{folder / STUDY_FILE}: damaged ({why}); run the study command again: it "
                         f"writes it from the study file") from None
    stages = Stages(folder)
    lines = [f"study {spec.name}: {len(spec.datasets)} datasets x {spec.trials} trials, folder {folder}"]
    for ds in spec.datasets:
        stem = Path(ds.path).stem
        lines.append(stem)
        for stage in STAGE_NAMES:
            if stage == "confirm" and spec.confirm is None:
                continue
            entry = stages.data.get(f"{stem}/{stage}")
            if entry is None:
                text = "not started"
            elif entry["done"]:
                text = f"done ({duration(float(entry['seconds']))})"
            else:
                seconds = float(entry["seconds"])
                parts = [f"{duration(seconds)} in earlier runs"] if seconds else []
                parts += [m for m in [_missing(stage, spec, ds, folder)] if m]
                text = "started, not finished" + (f" ({'; '.join(parts)})" if parts else "")
            lines.append(f"  {stage:<10}{text}")
            if entry is not None and not entry["done"]:
                running = _in_progress(stage, spec, ds, folder)
                if running:
                    lines.append(f"  {'':<10}in progress (last reports): {', '.join(running)}")
    report = stages.data.get("report")
    lines.append("report: " + (f"done ({folder / 'report' / 'report.html'})" if report and report["done"]
                               else "not written yet"))
    trainings = _pool_trainings(spec, folder)
    if trainings:
        lines += ["pool trainings in progress (resumed from there by the next run):", *trainings]
    if (folder / STAGES_FILE).is_file():
        lines.append(eta_line(folder))
    return "\n".join(lines)
