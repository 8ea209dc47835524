"""``verify`` and the loop it shares with the Tune trainable, on a real two-seed trial (a small real hopper
dataset, real pools, the seeds' SAC updates batched into one learner): the loop continued from its state
repeats the straight run; a stored trial re-run is equal in every field, and a changed value, a field the
re-run no longer reports, an epoch line lost and a dataset with other content are each told apart; nothing
is written into the stored folders and the process's torch threads are put back. The end-to-end check on a
killed, resumed and moved study through the CLI is in tests/tuner/test_confirm.py."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.trials.test_mopo import tiny_config
from trials.data.dataset import load_hdf5, save_hdf5
from trials.host import cpu_kind, machine
from trials.run.lockstep import LockstepTrial
from trials.run.params import TuneParams, tune_space
from trials.run.seed_group import SeedGroup
from tuner.errors import UsageError
from tuner.run.verify import verified_line, verify_trial
from tuner.store.records import NOT_REPLAYED, read_trials

SEEDS = [0, 1]
CLOCKS = ("time_", "updates_per_sec")


def _numbers(report: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in report.items() if not k.startswith(CLOCKS) and k not in NOT_REPLAYED}


@pytest.fixture(scope="module")
def stored_trial(hopper_random_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-seed trial run straight through its 3 epochs and stored as Tune stores one: ``params.json`` (its
    Tune config) and ``result.json`` (a line per epoch, with Tune's bookkeeping and the machine)."""
    root = tmp_path_factory.mktemp("stored")
    cfg = tiny_config(hopper_random_file, root / "sweep" / "pools")
    params = tune_space(cfg.to_dict(), SEEDS)
    trial = LockstepTrial(TuneParams.from_tune(params), load_hdf5(hopper_random_file))
    assert isinstance(trial.group, SeedGroup), "two seeds: one batched learner"
    folder = root / "sweep" / "exp" / "trial-0001-abc"
    folder.mkdir(parents=True)
    (folder / "params.json").write_text(json.dumps(params))
    lines = [{**r, "trial_id": "abc", "time_this_iter_s": 0.5, "hostname": "vm", **machine(trial.device)}
             for r in trial.epochs()]
    (folder / "result.json").write_text("".join(json.dumps(r) + "\n" for r in lines))
    return folder


def _files(root: Path) -> list[tuple[Path, int]]:
    return sorted((p, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file())


def test_the_loop_continued_from_its_state_repeats_the_straight_run(stored_trial: Path,
                                                                    hopper_random_file: Path) -> None:
    params = TuneParams.from_tune(json.loads((stored_trial / "params.json").read_text()))
    data = load_hdf5(hopper_random_file)
    first = LockstepTrial(params, data)
    reports = [next(first.epochs())]
    state = first.state_dict()
    torch.manual_seed(999)  # whatever ran in between must not matter
    again = LockstepTrial(params, data, states=state)
    assert again.final_report() is None, "not ended: nothing to report again"
    reports += list(again.epochs())
    stored = [json.loads(line) for line in (stored_trial / "result.json").read_text().splitlines()]
    assert [_numbers(r) for r in reports] == [_numbers(r) for r in stored]
    assert all(f"episode_returns_seed{s}" in stored[0] for s in SEEDS)
    ended = LockstepTrial(params, data, states=again.state_dict())  # restored at its end: its last report again
    final = ended.final_report()
    assert final is not None and _numbers(final) == _numbers(stored[-1])


def test_a_stored_trial_re_runs_equal_in_every_field(stored_trial: Path, tmp_path: Path) -> None:
    folder = tmp_path / "sweep"
    shutil.copytree(stored_trial.parent.parent, folder)
    before = _files(folder)
    torch.set_num_threads(1)
    [record] = read_trials(folder / "exp")
    record.params["base"]["pool_dir"] = str(tmp_path / "gone")  # moved: the pools above the trial are used
    record.params["threads"] = 2
    result = verify_trial(record, epochs=2)
    assert torch.get_num_threads() == 1, "the process's threads are put back"
    assert result.equal and result.compared == [1, 2] and result.fields > 2 * 20, result
    assert result.cpus == {1: cpu_kind(), 2: cpu_kind()} and not result.trained_pools
    assert verified_line(result, folder).startswith("exp/trial-0001-abc: epochs 1-2 re-run, every field equal (")
    assert _files(folder) == before, "nothing written into the stored folders"
    first = verify_trial(record)  # by default to the first evaluation: eval_every is 1
    assert first.epochs == 1 and first.equal


def _stored_lines(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (folder / "result.json").read_text().splitlines() if line.strip()]


def _write(folder: Path, lines: list[dict[str, Any]]) -> None:
    (folder / "result.json").write_text("".join(json.dumps(r) + "\n" for r in lines))


def test_each_way_a_re_run_can_fail_to_match_is_told(stored_trial: Path, tmp_path: Path,
                                                     hopper_random_file: Path) -> None:
    sweep = tmp_path / "sweep"
    shutil.copytree(stored_trial.parent.parent, sweep)
    folder = sweep / "exp" / stored_trial.name
    lines = _stored_lines(folder)

    changed = [dict(r) for r in lines]  # a value changed in its last bit, on a report from another CPU
    changed[1]["critic_loss"] = math.nextafter(changed[1]["critic_loss"], math.inf)
    changed[1]["cpu"] = "Other CPU (avx2)"
    _write(folder, changed)
    result = verify_trial(read_trials(sweep / "exp")[0], epochs=2)
    assert not result.equal and result.replay.differing == 1
    line = verified_line(result, sweep)
    assert "1 of 2 differ (epoch 2 critic_loss" in line and f"stored on Other CPU (avx2), here {cpu_kind()})" in line

    lost = [{**r, "penalty_p99": 1.0} if r["epoch"] == 1 else r for r in lines]  # reported then, not now
    _write(folder, lost)
    result = verify_trial(read_trials(sweep / "exp")[0], epochs=2)
    assert not result.equal and result.lost == [(1, "penalty_p99")]
    assert "1 stored field(s) no longer reported (epoch 1 penalty_p99)" in verified_line(result, sweep)

    _write(folder, lines[1:])  # epoch 1's line lost (a damaged line is dropped on read): epoch 2 is compared
    result = verify_trial(read_trials(sweep / "exp")[0])
    assert result.equal and result.epochs == 2 and result.compared == [2]
    assert "epochs 1-2 (1 not stored) re-run, every field equal" in verified_line(result, sweep)

    _write(folder, lines)
    other = tmp_path / "other.hdf5"  # the same file name elsewhere, other content
    shutil.copy(hopper_random_file, other)
    data = load_hdf5(other)
    data.rewards[:] += 1.0
    save_hdf5(data, other)
    record = read_trials(sweep / "exp")[0]
    record.params["base"]["dataset"] = str(tmp_path / "gone" / hopper_random_file.name)
    with pytest.raises(UsageError, match="pass --dataset FILE"):
        verify_trial(record)
    renamed = tmp_path / "elsewhere" / hopper_random_file.name
    renamed.parent.mkdir()
    shutil.move(other, renamed)
    with pytest.raises(UsageError, match="but the pools in .* were trained on"):
        verify_trial(record, datasets=[renamed])
