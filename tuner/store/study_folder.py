"""A study folder on disk (``tuner.run.study`` describes the layout): its stored study, the record of its
finished stages, its progress and time left, read without Ray (``mbrl-tune status`` and the running study
both use it)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import yaml

from trials.config import ConfigError
from trials.files import DamagedFileError, atomic_write_text, check_framed, framed_yaml, read_json
from tuner.store.confirm_plan import stored_progress
from tuner.store.durations import duration
from tuner.store.records import ENDED, RAN_OUT, TrialRecord, read_trials
from tuner.store.status import completion
from tuner.store.study_spec import StudyDataset, StudySpec

#: The stages of every dataset, in the order they run.
STAGE_NAMES = ("generate", "sweep", "compare", "calibrate", "confirm")

STUDY_FILE = "study.yaml"
STAGES_FILE = "stages.json"
#: What ``study.yaml``'s first and last lines call it (``trials.files.framed_yaml``): a record that opens so and
#: does not close was cut short (a truncated YAML file can still parse, as a different study). Records
#: written before these lines existed have neither and are read as they are.
RECORD_KIND = "study record"


def sweep_dir(folder: Path, ds: StudyDataset) -> Path:
    return folder / "sweeps" / Path(ds.path).stem


def say(text: str) -> None:
    print(f"[study] {text}", flush=True)


# ---------------------------------------------------------------- progress
def compare_runs(spec: StudySpec) -> int:
    """(arm, seed) runs the comparison of one dataset makes: both arms on the fresh seeds, the baseline on
    the sweep's seeds."""
    return 2 * spec.compare.seeds + len(spec.seeds)


def finished_compare_runs(spec: StudySpec, folder: Path, ds: StudyDataset) -> list[TrialRecord]:
    """The comparison runs of ``ds`` that ended with a score (finished or diverged)."""
    runs = (sweep_dir(folder, ds) / "compare" / spec.baselines).glob("*/run-*")
    return [r for run in runs for r in read_trials(run) if r.status in RAN_OUT]


def write_study_record(path: Path, data: dict[str, Any]) -> None:
    """Write a study record (``study.yaml``) framed as a :data:`RECORD_KIND` (``trials.files.framed_yaml``),
    atomically."""
    atomic_write_text(path, framed_yaml(data, RECORD_KIND))


def read_study_record(path: Path) -> Any:
    """The YAML data of a study record; :class:`DamagedFileError` when it opens as a record and does not close
    (cut short). Raises what reading and parsing raise for other damage."""
    text = path.read_text()
    check_framed(path, text)
    return yaml.safe_load(text)


def stored_study(folder: Path) -> StudySpec:
    """The study its first run wrote into ``folder`` (``study.yaml``)."""
    return StudySpec.model_validate(read_study_record(folder / STUDY_FILE))


def study_sweeps(folder: Path) -> tuple[list[Path], str]:
    """The sweep folders of the study in ``folder``, in its datasets' order, and its report's title (what
    the study's report stage and ``mbrl-tune report STUDY_FOLDER`` write)."""
    spec = stored_study(folder)
    return [sweep_dir(folder, ds) for ds in spec.datasets], f"mbrl-tune study: {spec.name}"


def trial_counts(folder: Path) -> dict[str, Any]:
    """What the study folder holds: sweep trials and compare runs done and planned, and the mean wall
    time of the trials done (from their reports), read from disk so that it is right after a resume."""
    spec = stored_study(folder)
    done = planned = compare_done = compare_planned = 0
    seconds: list[float] = []
    for ds in spec.datasets:
        records = read_trials(sweep_dir(folder, ds) / Path(ds.path).stem)
        ended = [r for r in records if r.status in ENDED]
        done += len(ended)
        planned += spec.trials
        seconds += [float(r.last["time_total_s"]) for r in ended if "time_total_s" in r.last]
        compare_planned += compare_runs(spec)
        finished = finished_compare_runs(spec, folder, ds)
        compare_done += len(finished)
        seconds += [float(r.last["time_total_s"]) for r in finished if "time_total_s" in r.last]
    return {"done": done, "planned": planned, "compare_done": min(compare_done, compare_planned),
            "compare_planned": compare_planned, "seconds": seconds,
            "concurrency": spec.compare.concurrency or spec.concurrency}


def confirm_eta(folder: Path) -> str:
    """The confirm stage's part of the time left: its runs done of planned and their wall time left at the
    stage's runs at a time (``tuner.store.confirm_plan.confirm_progress``), over the datasets whose plan is
    written; empty without a confirm block."""
    spec = stored_study(folder)
    if spec.confirm is None:
        return ""
    concurrency = spec.confirm.concurrency or spec.concurrency
    done = planned = 0
    seconds = 0.0
    unplanned = []
    for ds in spec.datasets:
        try:
            progress = stored_progress(sweep_dir(folder, ds), spec.confirm.k, spec.baselines)
        except (ConfigError, DamagedFileError, KeyError, ValueError) as exc:  # an old or damaged folder
            return f"confirm time left unreadable ({type(exc).__name__}: {str(exc).splitlines()[0][:80]})"
        if progress is None:
            unplanned.append(Path(ds.path).stem)
            continue
        done += sum(p.ended for p in progress)
        planned += sum(p.planned for p in progress)
        seconds += sum(p.wall_seconds(concurrency) for p in progress)  # one dataset's runs after another's
    parts = []
    if planned:
        when = f"about {duration(seconds)} left" if math.isfinite(seconds) else "time left unknown"
        parts.append(f"{done}/{planned} confirm runs done, {when} ({concurrency} at a time)")
    if unplanned:
        parts.append(f"confirm of {', '.join(unplanned)} not planned yet (its cost is printed when it starts)")
    return "; ".join(parts)


def eta_line(folder: Path) -> str:
    c = trial_counts(folder)
    left = (c["planned"] - c["done"]) + (c["compare_planned"] - c["compare_done"])
    text = f"{c['done']}/{c['planned']} sweep trials, {c['compare_done']}/{c['compare_planned']} compare runs done"
    confirm = confirm_eta(folder)
    if not c["seconds"]:
        text += "; time left: after the first trial"
    else:
        mean = sum(c["seconds"]) / len(c["seconds"])
        text += (f"; about {duration(left * mean / c['concurrency'])} left (mean trial {mean:.0f} s over "
                 f"{len(c['seconds'])}, {c['concurrency']} at a time; pools, calibration and the report not "
                 f"included)")
    return text + (f"; {confirm}" if confirm else "")


# ---------------------------------------------------------------- stages
class Stages:
    """``stages.json``: finished stages and the seconds each took."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / STAGES_FILE
        self.data: dict[str, dict[str, Any]] = {}
        if self.path.is_file():
            try:
                data = read_json(self.path, "record of the study's stages", "each stage checks its outputs again")
                if not isinstance(data, dict):
                    raise DamagedFileError(f"{self.path}: not a record of the study's stages; each stage checks "
                                           f"its outputs again")
                self.data = data
            except DamagedFileError as exc:
                say(str(exc))  # derived: each stage finds its own outputs complete again (a sweep, cached runs)

    def done(self, key: str) -> bool:
        return bool(self.data.get(key, {}).get("done"))

    def record(self, key: str, seconds: float, done: bool) -> None:
        entry = self.data.setdefault(key, {"done": False, "seconds": 0.0})
        entry["seconds"] = float(entry["seconds"]) + seconds
        entry["done"] = done
        atomic_write_text(self.path, json.dumps(self.data, indent=2))


def sweep_missing(spec: StudySpec, ds: StudyDataset, folder: Path) -> str | None:
    """None when the dataset's sweep is complete (``tuner.store.status.completion``, the rule ``sweep`` and
    ``resume`` exit by); else what is missing."""
    c = completion(spec.trials, read_trials(sweep_dir(folder, ds) / Path(ds.path).stem))
    return None if c.complete else f"{c.ended}/{c.target} trials finished, {c.errored} errored, {c.missing} missing"
