"""Same seed, same result, checked on demand: re-run the first epochs of stored trials in this process and
compare every field of their reports with the stored ones (``mbrl-tune verify PATH``).

A trial re-runs from its Tune config (``params.json``) through the trainable's own loop
(:class:`trials.run.lockstep.LockstepTrial`, without Ray), its seeds in lockstep and its torch threads as
stored, on the pools of its sweep; each stored epoch up to the last one re-run is compared with the report
of that epoch by the rule the store applies to an epoch reported again after a resume
(:class:`tuner.store.records.Replay`: every field both hold but clocks, hosts and Tune's counters; NaN
equals NaN), and a field the stored report holds that the re-run no longer reports counts as a
difference. Equal reports mean this machine, this code and these files reproduce the trial so far; a
difference names the first field that differs and the CPU each report was made on. By default it re-runs
one trial per experiment folder found under PATH (the first that reported) up to its first evaluation, so
that the episode returns are compared too.

Nothing is written into the stored folders: the trial reads its pools through links in a temporary folder,
and a pool that is not stored is trained there (and said so).
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from trials.data.dataset import Dataset, load_dataset
from trials.host import cpu_kind
from trials.run.lockstep import LockstepTrial
from tuner.errors import UsageError
from tuner.store.records import Replay, TrialRecord, compared_fields, read_trials, replayed_field

#: The folder of a sweep's dynamics pools (``<sweep>/pools``), looked for above a trial moved with its sweep.
POOLS = "pools"


@dataclass
class Verified:
    """One trial re-run and compared."""

    record: TrialRecord
    epochs: int
    """The epochs re-run (1 .. epochs)."""
    compared: list[int] = field(default_factory=list)
    """The stored epochs among them (a damaged line loses its epoch), each compared."""
    replay: Replay = field(default_factory=Replay)
    """Each compared epoch: whether a field differs, and the first differences."""
    fields: int = 0
    """Fields compared, summed over the epochs."""
    lost: list[tuple[int, str]] = field(default_factory=list)
    """(epoch, field) the stored report holds and the re-run no longer reports."""
    cpus: dict[int, str] = field(default_factory=dict)
    """Epoch -> the CPU its stored report names (``trials.host.cpu_kind``; "" for reports from before)."""
    trained_pools: list[str] = field(default_factory=list)
    """Pools that were not stored and were trained for the re-run (in a temporary folder)."""

    @property
    def equal(self) -> bool:
        return (bool(self.compared) and self.replay.epochs == len(self.compared) and self.replay.differing == 0
                and not self.lost and self.fields > 0)


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
    path = path.resolve()
    if (path / "params.json").is_file():
        chosen = [r for r in read_trials(path.parent) if r.path == path and _stored_epochs(r)]
    else:
        chosen = []
        for folder in experiment_folders(path):
            reported = [r for r in read_trials(folder) if _stored_epochs(r)]
            chosen += reported if every else reported[:1]
    if not chosen:
        raise UsageError(f"{path}: no trial that reported an epoch (a trial folder, or a sweep, comparison, "
                         f"confirmation or study folder holding some)")
    return chosen


def _stored_epochs(record: TrialRecord) -> dict[int, dict[str, Any]]:
    return {int(h["epoch"]): h for h in record.history if isinstance(h.get("epoch"), (int, float))}


def _pools(record: TrialRecord, stored: str | None) -> Path | None:
    """The trial's pool folder: the stored one where it still exists, else the nearest ``pools`` folder
    above the trial (a sweep moved as a whole); None when there is neither (every pool is then trained)."""
    if stored is not None and Path(stored).is_dir():
        return Path(stored)
    for parent in record.path.parents:
        if (parent / POOLS).is_dir():
            return parent / POOLS
    return None


def _dataset(record: TrialRecord, stored: str, given: Sequence[Path]) -> str:
    """The trial's dataset file: the stored path where it exists, else the given file of the same name."""
    if Path(stored).is_file():
        return stored
    for file in given:
        if file.name == Path(stored).name:
            return str(file)
    raise UsageError(f"{record.name}: its dataset {stored} is not there; pass --dataset FILE (a file named "
                     f"{Path(stored).name})")


def _check_data(record: TrialRecord, data: Dataset, file: str, pools: Path | None) -> None:
    """Refuse a dataset that is not the one the trial's pools were trained on (pool files are named by the
    data's content hash): with another file every pool would be trained again and every field differ."""
    if pools is None:
        return
    hashes = {p.name.split("-")[1] for p in pools.glob("pool-*-s*-*.pt")}
    digest = data.content_hash()
    if hashes and digest not in hashes:
        raise UsageError(f"{record.name}: {file} has content hash {digest}, but the pools in {pools} were trained "
                         f"on {', '.join(sorted(hashes))}; pass the dataset the trial ran on")


def verify_trial(record: TrialRecord, epochs: int | None = None, datasets: Sequence[Path] = ()) -> Verified:
    """Re-run ``record``'s first ``epochs`` epochs (None: up to its first evaluation; never past its last stored
    epoch, and at least to its first stored one) and compare each stored epoch among them."""
    params = record.tune_params
    cfg = params.trial_config(str(record.path))
    stored = _stored_epochs(record)
    if not stored:
        raise UsageError(f"{record.path}: no epoch stored in its result.json")
    want = min(epochs if epochs is not None else max(cfg.eval_every, 1), max(stored))
    want = max(want, min(stored))
    file = _dataset(record, cfg.dataset, datasets)
    data = load_dataset(file, cfg.env)
    pools = _pools(record, cfg.pool_dir)
    _check_data(record, data, file, pools)
    out = Verified(record, want, compared=[e for e in sorted(stored) if e <= want])
    threads = torch.get_num_threads()
    torch.set_num_threads(params.threads)
    try:
        with tempfile.TemporaryDirectory(prefix="verify-pools-") as tmp:
            for pool in (pools.glob("pool-*.pt") if pools is not None else ()):
                (Path(tmp) / pool.name).symlink_to(pool.resolve())  # read there, never written
            trial = LockstepTrial(params, data, tmp)
            for report in trial.epochs():
                epoch = int(report["epoch"])
                if epoch in stored:
                    before = stored[epoch]
                    out.fields += len(compared_fields(before, report))
                    out.replay.compare(epoch, before, report)
                    out.lost += [(epoch, k) for k in sorted(before.keys() - report.keys()) if replayed_field(k)]
                    out.cpus[epoch] = str(before.get("cpu", ""))
                if epoch >= want:
                    break
            out.trained_pools = sorted(p.name for p in Path(tmp).glob("pool-*.pt") if not p.is_symlink())
    finally:
        torch.set_num_threads(threads)
    return out


def verify(path: Path, epochs: int | None = None, every: bool = False,
           datasets: Sequence[Path] = ()) -> list[Verified]:
    """:func:`verify_trial` for each of :func:`select_trials`, printing a line as each ends."""
    if epochs is not None and epochs < 1:
        raise UsageError(f"--epochs {epochs}: re-run at least 1 epoch")
    for file in datasets:
        if not file.is_file():
            raise UsageError(f"--dataset {file}: no such file")
    records = select_trials(path, every)
    results = []
    for record in records:
        result = verify_trial(record, epochs, datasets)
        print(verified_line(result, path.resolve()), flush=True)
        results.append(result)
    return results


def verified_line(result: Verified, root: Path) -> str:
    """``<trial folder>: epochs 1-2 re-run, every field equal (34 compared)``, or the first difference and the
    CPU each side ran on."""
    path = result.record.path
    where = path.relative_to(root) if path != root and path.is_relative_to(root) else path.name
    span = "epoch 1" if result.epochs == 1 else f"epochs 1-{result.epochs}"
    missing = sorted(set(range(1, result.epochs + 1)) - set(result.compared))
    span += f" ({', '.join(map(str, missing))} not stored)" if missing else ""
    note = f"; pools not stored, trained for this: {', '.join(result.trained_pools)}" if result.trained_pools else ""
    replay = result.replay
    if result.equal:
        return f"{where}: {span} re-run, every field equal ({result.fields} compared){note}"
    if replay.differing:
        epoch, key, before, now = replay.examples[0]
        cpu = result.cpus.get(epoch, "")
        machines = f"stored on {cpu}, here {cpu_kind()}" if cpu else f"its CPU not recorded, here {cpu_kind()}"
        return (f"{where}: {span} re-run, {replay.differing} of {replay.epochs} differ (epoch {epoch} {key}: "
                f"stored {before!r}, here {now!r}; {machines}){note}")
    if result.lost:
        epoch, key = result.lost[0]
        return (f"{where}: {span} re-run, {len(result.lost)} stored field(s) no longer reported (epoch {epoch} "
                f"{key}){note}")
    return f"{where}: {span} re-run, but no stored field could be compared{note}"
