"""Keeping a sweep's Ray Tune state restorable: good copies of the state files, checked before a resume.

A crash mid-write or a full disk can leave a truncated ``experiment_state-*.json``, ``searcher-state-*.pkl``,
``search_gen_state-*.json`` or ``tuner.pkl`` in an experiment folder, and ``Tuner.restore`` then fails with
a traceback on every try. So:

- :func:`backup_state` copies each state file that parses into ``<experiment>/.state-backup/`` (temporary
  name, then rename), after every finished trial (:class:`StateBackup`) and before every resume;
- :func:`repair_state`, before ``Tuner.restore``, parses every state file; if one is damaged or missing,
  the set of copies replaces the live set (the copies may be a trial or two older: Tune then re-runs, with
  the same configs, the trials that finished after them; their first results stay on disk). Without a
  good copy the resume is refused with one line naming the file and what to do.

:func:`match_trial_count` then sets the search generator's count of trials created to the trials the
experiment state lists, when a full disk let one file be written and not the other.

A sweep moved to another path (another machine mounting the same storage elsewhere) is followed by
:func:`follow_move`: Tune itself re-points the restored trials, but the search generator's pickled
experiment keeps the old storage path, and every trial it creates after the resume would write there
(and fail on a machine where that path does not exist); the state file is rewritten to the new path. A
sweep begun before :mod:`tuner.faults.storage` existed gets its new trials written through that filesystem too.

Trials' checkpoints are not checked here: a trial whose checkpoint cannot be read starts over
(``trials.run.trainable``), its finished siblings are untouched.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from ray import cloudpickle, tune

from trials.files import atomic_write, atomic_write_bytes
from tuner.errors import SweepError
from tuner.faults.storage import whole_file_fs

BACKUP_DIR = ".state-backup"
#: The state files Ray Tune keeps in an experiment folder (the newest of each pattern is the live one).
STATE_PATTERNS = ("experiment_state-*.json", "search_gen_state-*.json", "searcher-state-*.pkl", "tuner.pkl")


def damage(path: Path) -> str | None:
    """Why ``path`` cannot be read back (None when it parses)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return f"unreadable ({exc.strerror})"
    if not data:
        return "empty file"
    # The names do not say the format (Tune's search_gen_state-*.json is a pickle, our searcher writes its
    # searcher-state-*.pkl as JSON): a file is good when it parses as either.
    problems = []
    for loads in (json.loads, cloudpickle.loads):
        try:
            loads(data)
            return None
        except Exception as exc:  # any parse failure
            problems.append(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'unreadable'}")
    return problems[0] if data[:1] in (b"{", b"[") else problems[1]


def live_state_files(exp_dir: Path) -> list[Path]:
    """The newest file of each state pattern present in ``exp_dir``."""
    out = []
    for pattern in STATE_PATTERNS:
        found = sorted(exp_dir.glob(pattern))
        if found:
            out.append(found[-1])
    return out


def _copy_atomic(src: Path, dst: Path) -> None:
    atomic_write(dst, lambda tmp: shutil.copyfile(src, tmp))


def backup_state(exp_dir: Path) -> list[Path]:
    """Copy every live state file that parses into the backup folder; returns the copies made."""
    backup = exp_dir / BACKUP_DIR
    made = []
    for path in live_state_files(exp_dir):
        if damage(path) is None:
            backup.mkdir(exist_ok=True)
            _copy_atomic(path, backup / path.name)
            made.append(backup / path.name)
    return made


def repair_state(exp_dir: Path) -> list[str]:
    """Make ``exp_dir`` restorable. When any live state file is damaged (or missing while its copy exists),
    the whole set of copies replaces the whole live set: the files were copied together, so they agree
    with each other (a newer searcher state beside an older experiment state would not). Returns one note
    per file replaced; raises :class:`SweepError` (one line) when a damaged file has no good copy."""
    backup = exp_dir / BACKUP_DIR
    copies = {p: sorted(backup.glob(p)) if backup.is_dir() else [] for p in STATE_PATTERNS}
    problems = {}
    for pattern in STATE_PATTERNS:
        live = sorted(exp_dir.glob(pattern))
        if live and damage(live[-1]) is not None:
            problems[pattern] = (live[-1], damage(live[-1]))
        elif not live and copies[pattern]:
            problems[pattern] = (exp_dir / copies[pattern][-1].name, "missing")
    if not problems:
        return []
    good = {p: c[-1] for p, c in copies.items() if c and damage(c[-1]) is None}
    for pattern, (path, problem) in problems.items():
        if pattern not in good:
            raise SweepError(f"{path}: damaged ({problem}) and no good copy is kept; move {exp_dir} aside and "
                             f"start a new sweep with --warm-start {exp_dir.parent} to keep its finished trials")
    notes = []
    for pattern, copy in good.items():
        for stale in sorted(exp_dir.glob(pattern)):  # Tune reads the newest by name: only the copy may stay
            if stale.name != copy.name:
                stale.unlink()
        _copy_atomic(copy, exp_dir / copy.name)
        why = problems[pattern][1] if pattern in problems else "restored with the damaged ones, to agree with them"
        notes.append(f"{copy.name} ({why}): replaced by the copy kept in {BACKUP_DIR}/")
    return notes


def match_trial_count(exp_dir: Path) -> list[str]:
    """Make the search generator's count of trials created agree with the trials the experiment state lists.

    Tune saves the two in separate files. On a full disk the small ``search_gen_state`` can be written while
    the larger ``experiment_state`` is not (its old file stays whole, so nothing looks damaged): the
    generator then counts a trial the restored experiment does not hold, and since Tune stops asking for
    trials once the count reaches ``num_samples``, that trial is never run, by this resume or any later
    one (seen: "5 finished, 0 errored, 1 missing of 6" after every resume). The reverse (a generator state
    older than the trial list) would create trials beyond ``num_samples``. The count is set to the trials
    listed; the searcher proposes again for those it lost. Returns a note when it changed the file."""
    states = sorted(exp_dir.glob("experiment_state-*.json"))
    generators = sorted(exp_dir.glob("search_gen_state-*.json"))
    if not states or not generators:
        return []
    trials = len(json.loads(states[-1].read_text()).get("trial_data", []))
    state = cloudpickle.loads(generators[-1].read_bytes())
    counter = state.get("counter") if isinstance(state, dict) else None
    if not isinstance(counter, int) or counter == trials:
        return []
    state["counter"] = trials
    atomic_write_bytes(generators[-1], cloudpickle.dumps(state))
    return [f"{generators[-1].name}: counted {counter} trials created, the experiment state lists {trials}; "
            f"set to {trials}, so the sweep still runs to its count"]


def follow_move(exp_dir: Path) -> list[str]:
    """Re-point the search generator's stored experiment at ``exp_dir`` when the sweep was moved, and at
    :func:`whole_file_fs` when it wrote through the plain local filesystem; returns a note per moved state
    file (each rewritten atomically)."""
    notes = []
    for path in sorted(exp_dir.glob("search_gen_state-*.json")):
        state = cloudpickle.loads(path.read_bytes())
        experiment = state.get("experiment") if isinstance(state, dict) else None
        if experiment is None:
            continue
        storages = {id(s): s for s in (getattr(experiment, "storage", None),
                                       getattr(experiment, "spec", {}).get("storage")) if s is not None}
        moved = [s for s in storages.values()
                 if (s.storage_fs_path, s.experiment_dir_name) != (str(exp_dir.parent), exp_dir.name)]
        plain = [s for s in storages.values() if s.storage_filesystem != whole_file_fs()]  # a sweep of before
        if not moved and not plain:
            continue
        for storage in plain:
            storage.storage_filesystem = whole_file_fs()
        if moved:
            old = moved[0].storage_fs_path
            for storage in moved:
                storage.storage_fs_path, storage.experiment_dir_name = str(exp_dir.parent), exp_dir.name
            notes.append(f"{path.name}: the sweep moved from {old}; new trials are written under {exp_dir.parent}")
        atomic_write_bytes(path, cloudpickle.dumps(state))
    return notes


class StateBackup(tune.Callback):
    """Backs up the experiment's state files after every finished trial."""

    def __init__(self, exp_dir: Path) -> None:
        self.exp_dir = str(exp_dir)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        try:
            backup_state(Path(self.exp_dir))
        except OSError:  # a full disk: the previous good copies stay as they are
            pass
