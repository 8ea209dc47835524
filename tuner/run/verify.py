"""Same seed, same result, checked on demand: re-run the first epochs of stored trials in this process and
compare every field of their reports with the stored ones (``mbrl-tune verify PATH``).

A trial re-runs from its Tune config (``params.json``) through the trainable's own loop
(:class:`trials.run.lockstep.LockstepTrial`, without Ray), its seeds in lockstep and its torch threads as
stored, on the pools of its sweep; each epoch's report is compared with the stored report of that epoch
by the rule the store applies to an epoch reported again after a resume
(:class:`tuner.store.records.Replay`: every field both hold but clocks, hosts and Tune's counters; NaN
equals NaN). Equal reports mean this machine, this code and these files reproduce the trial so far;
a difference names the first field that differs. By default it re-runs one trial per experiment folder
found under PATH (the first that reported) up to its first evaluation, so that the episode returns are
compared too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from trials.data.dataset import load_dataset
from trials.host import cpu_kind
from trials.run.lockstep import LockstepTrial
from tuner.errors import UsageError
from tuner.store.records import Replay, TrialRecord, compared_fields, read_trials

#: The folder of a sweep's dynamics pools (``<sweep>/pools``), looked for above a trial moved with its sweep.
POOLS = "pools"


@dataclass
class Verified:
    """One trial re-run and compared."""

    record: TrialRecord
    epochs: int
    """The epochs re-run (1 .. epochs)."""
    replay: Replay = field(default_factory=Replay)
    """Each re-run epoch compared with the stored one."""
    fields: int = 0
    """Fields compared, summed over the epochs."""
    stored_cpu: str = ""
    """The CPU the stored reports name (``trials.host.cpu_kind``; "" for reports from before they did)."""

    @property
    def equal(self) -> bool:
        return self.replay.epochs == self.epochs and self.replay.differing == 0 and self.fields > 0


def experiment_folders(path: Path) -> list[Path]:
    """The Tune experiment folders at or below ``path`` (a folder holding trial folders with a
    ``params.json``); a trial folder itself stands for its experiment."""
    if (path / "params.json").is_file():
        return [path.parent]
    return sorted({p.parent.parent for p in path.rglob("*/params.json")})


def select_trials(path: Path, every: bool) -> list[TrialRecord]:
    """The trials to re-run: the one trial folder ``path`` names; otherwise, per experiment folder below
    ``path``, every trial that reported (``every``) or the first one. Raises :class:`UsageError` when
    there is none."""
    if not path.exists():
        raise UsageError(f"{path}: no such folder")
    if (path / "params.json").is_file():
        chosen = [r for r in read_trials(path.parent) if r.path == path]
    else:
        chosen = []
        for folder in experiment_folders(path):
            reported = [r for r in read_trials(folder) if r.history]
            chosen += reported if every else reported[:1]
    chosen = [r for r in chosen if r.history]
    if not chosen:
        raise UsageError(f"{path}: no trial that reported an epoch (a trial folder, or a sweep, comparison, "
                         f"confirmation or study folder holding some)")
    return chosen


def _pool_dir(record: TrialRecord, stored: str | None) -> str | None:
    """The trial's pool folder: the stored one where it still exists (None: the config's default), else the
    nearest ``pools`` folder above the trial (a sweep moved as a whole). A pool missing from it is trained
    there, as the trial did."""
    if stored is None or Path(stored).is_dir():
        return stored
    for parent in record.path.parents:
        if (parent / POOLS).is_dir():
            return str(parent / POOLS)
    raise UsageError(f"{record.name}: its pool folder {stored} is not there, nor a {POOLS}/ folder above the trial")


def _dataset(record: TrialRecord, stored: str, given: Sequence[Path]) -> str:
    """The trial's dataset file: the stored path where it exists, else the given file of the same name."""
    if Path(stored).is_file():
        return stored
    for file in given:
        if file.name == Path(stored).name:
            return str(file)
    raise UsageError(f"{record.name}: its dataset {stored} is not there; pass --dataset FILE (a file named "
                     f"{Path(stored).name})")


def verify_trial(record: TrialRecord, epochs: int | None = None, datasets: Sequence[Path] = ()) -> Verified:
    """Re-run ``record``'s first ``epochs`` epochs (None: up to its first evaluation; never past its last
    stored epoch) and compare each report with the stored one."""
    params = record.tune_params
    cfg = params.trial_config(str(record.path))
    stored = {int(h["epoch"]): h for h in record.history if "epoch" in h}
    last = max(stored)
    want = min(epochs if epochs is not None else max(cfg.eval_every, 1), last)
    data = load_dataset(_dataset(record, cfg.dataset, datasets), cfg.env)
    threads = torch.get_num_threads()
    torch.set_num_threads(params.threads)
    try:
        trial = LockstepTrial(params, data, _pool_dir(record, cfg.pool_dir))
        out = Verified(record, want, stored_cpu=str(record.history[0].get("cpu", "")))
        for report in trial.epochs():
            epoch = int(report["epoch"])
            if epoch in stored:
                out.fields += len(compared_fields(stored[epoch], report))
                out.replay.compare(epoch, stored[epoch], report)
            if epoch >= want:
                break
    finally:
        torch.set_num_threads(threads)
    return out


def verify(path: Path, epochs: int | None = None, every: bool = False,
           datasets: Sequence[Path] = ()) -> list[Verified]:
    """:func:`verify_trial` for each of :func:`select_trials`, printing a line as each ends."""
    if epochs is not None and epochs < 1:
        raise UsageError(f"--epochs {epochs}: re-run at least 1 epoch")
    records = select_trials(path, every)
    for file in datasets:
        if not file.is_file():
            raise UsageError(f"--dataset {file}: no such file")
    results = []
    for record in records:
        result = verify_trial(record, epochs, datasets)
        print(verified_line(result, path), flush=True)
        results.append(result)
    return results


def verified_line(result: Verified, root: Path) -> str:
    """``<trial folder>: epochs 1-2 re-run, every field equal (34 compared)``, or the first difference."""
    path = result.record.path
    where = path.relative_to(root) if path != root and path.is_relative_to(root) else path.name
    span = "epoch 1" if result.epochs == 1 else f"epochs 1-{result.epochs}"
    replay = result.replay
    if result.equal:
        return f"{where}: {span} re-run, every field equal ({result.fields} compared)"
    if replay.differing:
        epoch, key, before, now = replay.examples[0]
        machines = (f"stored on {result.stored_cpu}, here {cpu_kind()}" if result.stored_cpu
                    else f"its CPU not recorded, here {cpu_kind()}")
        return (f"{where}: {span} re-run, {replay.differing} of {replay.epochs} differ (epoch {epoch} {key}: "
                f"stored {before!r}, here {now!r}; {machines})")
    return f"{where}: {span} re-run, but no stored field could be compared ({replay.epochs} epochs matched)"
