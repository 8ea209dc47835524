"""Reading what a sweep wrote, without Ray: one :class:`TrialRecord` per Tune trial folder
(``params.json`` = the trial's Tune config, ``result.json`` = one JSON line per report). Also the two
small things the driver writes into those folders: the early-stop marker and, before a resume, copies
of checkpoints a killed driver left missing."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trials.config import TrialConfig
from trials.files import atomic_write_text
from trials.host import MACHINE_FIELDS
from trials.run.params import TuneParams

#: Status of a trial the scheduler (``--early-stop asha``) ended before its last epoch.
STOPPED = "stopped"
#: Statuses of trials that ran to their last epoch (a diverged one reports its last finite score).
RAN_OUT = ("finished", "diverged")
#: Statuses of trials that will not run again and carry a score (a stopped trial's: its last epoch's).
ENDED = (*RAN_OUT, STOPPED)
#: Marker file the driver writes into such a trial's folder (the trial's own reports cannot say it).
STOPPED_MARKER = "stopped_early.json"


#: Trial folder names: ``trial-<index, 4 digits>-<trial id>`` (``trial-0004-723b9867``).
TRIAL_DIR = re.compile(r"^trial-(\d+)-([0-9a-f]+)$")
#: Ray Tune's default names, of sweeps made before: ``<trainable>_<trial id>_<index>_<config>_<date>``.
_OLD_INDEX = re.compile(r"_(\d+)(?:_|$)")
_OLD_FOLDER = re.compile(r"^([A-Za-z0-9]+(?:_[A-Za-z]+)*)_([0-9a-f]{5,})_\d+")


def trial_dirname(trial: Any) -> str:
    """The folder name of a Tune trial (Tune's ``trial_dirname_creator``): its creation index, which Tune
    puts first in the experiment tag, and its id."""
    index = str(trial.experiment_tag).split("_", 1)[0]
    return f"trial-{int(index):04d}-{trial.trial_id}" if index.isdigit() else f"trial-{trial.trial_id}"


def _folder_id(name: str) -> str:
    """The trial id in a folder name, new style (``trial-0004-<id>``) or Tune's (``<trainable>_<id>_<n>_...``),
    for a trial that has reported nothing yet; the whole name when neither matches."""
    match = TRIAL_DIR.match(name) or _OLD_FOLDER.match(name)
    return match.group(2) if match else name


def mark_stopped(trial_dir: Path, epoch: int) -> None:
    """Record that the scheduler ended this trial after ``epoch`` epochs."""
    atomic_write_text(trial_dir / STOPPED_MARKER, json.dumps({"stopped_after_epoch": epoch}) + "\n")


#: Report fields that are not the run's own numbers: Tune's bookkeeping, clocks, hosts and speeds. Every other
#: field of an epoch reported again (after a resume or a start over) must come back equal (:class:`Replay`).
NOT_REPLAYED = frozenset({"timestamp", "date", "hostname", "node_ip", "node_id", "pid", "trial_id", "config",
                          "done", "checkpoint_dir_name", "training_iteration", "iterations_since_restore",
                          "updates_per_sec", "should_checkpoint", *MACHINE_FIELDS})
#: Differing epochs a :class:`Replay` names (the first ones; all are counted).
_KEPT_DIFFERENCES = 5


def _clock(key: str) -> bool:
    return key.startswith("time_") or key.endswith("_seconds") or key in NOT_REPLAYED


def _equal(a: Any, b: Any) -> bool:
    """``a == b`` with NaN equal to NaN, inside lists and mappings too (episode returns, per-seed fields)."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    return bool(a == b)


def replayed_field(key: str) -> bool:
    """Whether a report field is one of the run's own numbers, which a re-run must repeat (not a clock, a host,
    the machine or Tune's bookkeeping: :data:`NOT_REPLAYED`)."""
    return not _clock(key)


def compared_fields(first: dict[str, Any], again: dict[str, Any]) -> list[str]:
    """The fields of two reports of one epoch that must be equal: every :func:`replayed_field` both hold, sorted."""
    return sorted(k for k in first.keys() & again.keys() if replayed_field(k))


@dataclass
class Replay:
    """The epochs a trial reported a second time (a resume re-runs the epochs after its last checkpoint, a run
    that starts over re-runs all of them), each compared with the report it replaces: same seed, same code and same
    kind of CPU give the same numbers, so a difference means the run is not reproducible there (another
    CPU's arithmetic, another library version, or a bug)."""

    epochs: int = 0
    """Epochs reported again and compared."""
    differing: int = 0
    """Of those, the epochs where a field differs."""
    examples: list[tuple[int, str, Any, Any]] = field(default_factory=list)
    """The first differing epochs, one difference each: (epoch, field, the report replaced, the new one)."""

    def compare(self, epoch: int, first: dict[str, Any], again: dict[str, Any]) -> None:
        """Count ``epoch`` and whether a field both reports hold differs (a field one lacks is not compared:
        a newer version may report more)."""
        keys = [k for k in compared_fields(first, again) if not _equal(first[k], again[k])]
        self.epochs += 1
        self.differing += bool(keys)
        if keys and len(self.examples) < _KEPT_DIFFERENCES:
            self.examples.append((epoch, keys[0], first[keys[0]], again[keys[0]]))


@dataclass
class TrialRecord:
    trial_id: str
    path: Path
    params: dict[str, Any]
    """The Tune config: ``base``, ``seeds`` and the searched overrides."""
    history: list[dict[str, Any]]
    """Every report of the latest attempt, in order: a trial resumed from a checkpoint (or started over)
    re-reports from that epoch, and its new reports replace the earlier attempt's from there on."""
    errored: bool
    replay: Replay = field(default_factory=Replay)
    """The epochs reported again after a resume or a start over, each compared with the report it replaces."""

    @property
    def order(self) -> int:
        """Tune's creation index of the trial (1, 2, ... as the searcher created them), read from its folder
        name (new or old style); -1 when the name has none."""
        name = self.path.name
        match = TRIAL_DIR.match(name)
        if match:
            return int(match.group(1))
        rest = name.split(self.trial_id, 1)[1] if self.trial_id in name else name
        old = _OLD_INDEX.match(rest) or _OLD_INDEX.search(rest)
        return int(old.group(1)) if old else -1

    @property
    def name(self) -> str:
        """The trial's display name, ``trial-0004-723b9867``, for new and old folders alike."""
        return f"trial-{self.order:04d}-{self.trial_id}" if self.order >= 0 else f"trial-{self.trial_id}"

    @property
    def tune_params(self) -> TuneParams:
        """The trial's Tune config (``params.json``), split into base, searched values, seeds and threads."""
        return TuneParams.from_tune(self.params)

    @property
    def overrides(self) -> dict[str, Any]:
        """The searched values: the Tune config's dotted trial-config keys."""
        return self.tune_params.overrides

    @property
    def seeds(self) -> list[int]:
        """The seeds the trial ran: its Tune config's ``seeds``, or (a config without them, as ``compare``
        writes) its trial config's one seed; none when its config has no base."""
        params = self.tune_params
        return params.run_seeds if params.base else []

    @property
    def last(self) -> dict[str, Any]:
        return self.history[-1] if self.history else {}

    @property
    def status(self) -> str:
        if self.errored:
            return "error"
        status = str(self.last.get("status", "pending"))
        if status == "running" and (self.path / STOPPED_MARKER).exists():
            return STOPPED
        return status

    def trial_config(self) -> TrialConfig:
        """The full trial config this trial ran (seed = its first seed)."""
        cfg = self.tune_params.trial_config(str(self.path))
        return cfg.with_overrides({"seed": self.seeds[0]}) if self.seeds else cfg


def _read_history(path: Path, replay: Replay | None = None) -> list[dict[str, Any]]:
    """The latest attempt's reports, by epoch; each epoch reported again is compared into ``replay``."""
    rows: dict[int, dict[str, Any]] = {}
    dropped: dict[int, dict[str, Any]] = {}  # an earlier attempt's reports, until reported again
    newest = 0
    replay = Replay() if replay is None else replay
    if not path.is_file():
        return []
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")  # damaged bytes spoil their line only
    except OSError:
        return []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            row = json.loads(line)
            epoch = int(row.get("epoch", len(rows) + 1))
        except (ValueError, TypeError, AttributeError):
            continue  # a line cut by a crash, or damaged
        if epoch <= newest:  # a resume (or a start over) reports from here again
            for stale in [k for k in rows if k >= epoch]:
                dropped[stale] = rows.pop(stale)
        if epoch in dropped:
            replay.compare(epoch, dropped.pop(epoch), row)
        rows[epoch] = row
        newest = epoch
    return [rows[k] for k in sorted(rows)]


def read_trials(experiment_dir: Path) -> list[TrialRecord]:
    """Every trial of one Tune experiment folder, in creation order."""
    records = []
    for params_path in sorted(Path(experiment_dir).glob("*/params.json")):
        folder = params_path.parent
        replay = Replay()
        history = _read_history(folder / "result.json", replay)
        try:
            params = json.loads(params_path.read_bytes())
        except (OSError, ValueError):
            params = None
        reported = history[-1].get("config") if history else None
        if isinstance(reported, dict) and params != reported:
            # Damaged or replaced (cut short by a full disk, another trial's file): every report repeats the
            # trial's Tune config, so a trial that reported is read from there.
            params = reported
        if not isinstance(params, dict):
            continue  # never reported and no whole config: the trial never ran
        trial_id = str(history[-1]["trial_id"]) if history and "trial_id" in history[-1] else _folder_id(folder.name)
        records.append(TrialRecord(trial_id, folder, params, history, _errored(folder, history), replay))
    return sorted(records, key=lambda r: (r.order, r.path.name))


def _errored(folder: Path, history: list[dict[str, Any]]) -> bool:
    """Whether the trial's latest attempt failed: an ``error.txt`` and no end reported, and no result
    written after the error (Tune retrying the trial from its checkpoint, e.g. after a lost node; a retry
    reports its first epoch seconds after the failure, so a result within a second of it does not count)."""
    error = folder / "error.txt"
    if not error.exists() or (history and history[-1].get("status") in RAN_OUT):
        return False
    results = folder / "result.json"
    return not (history and results.exists() and results.stat().st_mtime > error.stat().st_mtime + 1.0)


def tune_state_text(experiment_dir: Path) -> str:
    """The newest experiment state Ray Tune wrote in ``experiment_dir``, as text ("" when there is none):
    the trials whose ids it names are the ones a resume continues."""
    states = sorted(Path(experiment_dir).glob("experiment_state-*.json"))
    try:
        return states[-1].read_text(errors="replace") if states else ""
    except OSError:
        return ""


CHECKPOINT_DIR = re.compile(r"checkpoint_\d{6}")


def restore_missing_checkpoints(experiment_dir: Path) -> list[Path]:
    """Repair what a driver killed at the wrong moment leaves behind, before the experiment is restored.

    Ray Tune deletes a trial's previous checkpoint as soon as it registers a new one (``num_to_keep=1``)
    and snapshots the experiment state a moment later; a driver killed in between leaves a state naming
    the deleted ``checkpoint_<k-1>``, and that trial then fails every restore. For each unfinished trial
    whose newest checkpoint is ``k`` and whose ``k-1`` is missing, a copy of ``k`` is put under the name
    ``k-1`` (copied to a temporary name, then renamed), so the trial resumes from its newest state.

    An unfinished trial (errored ones included) whose checkpoints are all gone (deleted, or left out of a
    copy of the sweep) would fail every restore too: an empty folder is put under each checkpoint name its
    results mention, and the trial, finding no state there, starts over (``trials.run.trainable``).

    Returns the folders made; the caller removes those still present once the experiment has run.
    """
    made = []
    for record in read_trials(experiment_dir):
        if record.status in ENDED:
            continue
        checkpoints = sorted(record.path.glob("checkpoint_[0-9]*"))
        if not checkpoints:
            named = {str(row.get("checkpoint_dir_name")) for row in record.history}
            named = {n for n in named if CHECKPOINT_DIR.fullmatch(n)}
            for name in sorted(named):
                (record.path / name).mkdir()
                made.append(record.path / name)
            continue
        if record.errored:
            continue
        newest = checkpoints[-1]
        index = int(newest.name.split("_")[1])
        previous = record.path / f"checkpoint_{index - 1:06d}"
        if index == 0 or previous.exists():
            continue
        tmp = record.path / f".{previous.name}.{os.getpid()}.tmp"
        try:
            shutil.copytree(newest, tmp)
            os.replace(tmp, previous)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)  # a full disk: no half copy left behind
            raise
        made.append(previous)
    return made
