"""Reading and repairing a Tune experiment folder with the sweep's own file layout."""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tuner.store.records import restore_missing_checkpoints


def make_trial(exp: Path, name: str, status: str, checkpoints: list[int]) -> Path:
    trial = exp / name
    trial.mkdir(parents=True)
    (trial / "params.json").write_text(json.dumps({"lam": 1.0}))
    rows = [{"epoch": e, "status": "running", "score": 1.0, "trial_id": name} for e in (1, 2)]
    rows[-1]["status"] = status
    (trial / "result.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for k in checkpoints:
        folder = trial / f"checkpoint_{k:06d}"
        folder.mkdir()
        (folder / "state.pt").write_bytes(f"state after checkpoint {k}".encode())
    return trial


def test_missing_previous_checkpoint_of_an_unfinished_trial_is_restored(tmp_path: Path) -> None:
    stale = make_trial(tmp_path, "t1", "running", [3])  # the state may still name checkpoint 2
    finished = make_trial(tmp_path, "t2", "finished", [3])
    both = make_trial(tmp_path, "t3", "running", [2, 3])
    first = make_trial(tmp_path, "t4", "running", [0])

    made = restore_missing_checkpoints(tmp_path)

    assert made == [stale / "checkpoint_000002"]
    assert (made[0] / "state.pt").read_bytes() == b"state after checkpoint 3"  # the newest state
    assert not (finished / "checkpoint_000002").exists()
    assert (both / "checkpoint_000002" / "state.pt").read_bytes() == b"state after checkpoint 2"
    assert sorted(p.name for p in first.iterdir()) == ["checkpoint_000000", "params.json", "result.json"]
    assert not list(stale.glob(".*tmp"))  # nothing half-written left behind
    assert restore_missing_checkpoints(tmp_path) == []  # repaired once


def test_an_unfinished_trial_whose_checkpoints_are_all_gone_gets_empty_ones_to_start_over(tmp_path: Path) -> None:
    gone = make_trial(tmp_path, "t1", "running", [])  # its checkpoints were deleted, or left out of a copy
    rows = [{"epoch": e, "status": "running", "trial_id": "t1", "checkpoint_dir_name": f"checkpoint_{e - 1:06d}"}
            for e in (1, 2)]
    rows.append({"epoch": 3, "status": "running", "trial_id": "t1", "checkpoint_dir_name": "../../elsewhere"})
    (gone / "result.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (gone / "error.txt").write_text("ValueError: Could not recover from checkpoint\n")  # as resume left it
    never = make_trial(tmp_path, "t2", "running", [])  # reported nothing with a checkpoint: nothing to do

    made = restore_missing_checkpoints(tmp_path)

    assert made == [gone / "checkpoint_000000", gone / "checkpoint_000001"]  # only checkpoint names
    assert all(p.is_dir() and not any(p.iterdir()) for p in made)  # no state: the trial starts over
    assert not (tmp_path / "elsewhere").exists() and not list(never.glob("checkpoint_*"))


def test_trial_names_and_order_for_new_and_old_folder_names(tmp_path: Path) -> None:
    """New folders are ``trial-<number>-<id>``; sweeps made before keep Tune's names and still load, with the
    same display names and creation order; a trial that reported nothing yet still gets its id."""
    from types import SimpleNamespace

    from tuner.store.records import read_trials, trial_dirname

    assert trial_dirname(SimpleNamespace(experiment_tag="4_lam=1.0,penalty=ll_var", trial_id="723b9867")) == \
        "trial-0004-723b9867"
    old = "tune_trainable_723b9867_12_checkpoint_every=1,dataset=x_hdf5,device=cpu_2026-12-01_20-11-01"
    new_dir = make_trial(tmp_path, "trial-0003-a1b2c3d4", "finished", [])
    old_dir = make_trial(tmp_path, old, "finished", [])
    for folder, trial_id in ((new_dir, "a1b2c3d4"), (old_dir, "723b9867")):  # result lines carry the id
        rows = [json.loads(line) for line in (folder / "result.json").read_text().splitlines()]
        (folder / "result.json").write_text("".join(json.dumps({**r, "trial_id": trial_id}) + "\n" for r in rows))
    pending = tmp_path / "tune_trainable_5e5e5e5e_13_lam=2_2026-12-01_20-12-00"
    pending.mkdir()
    (pending / "params.json").write_text(json.dumps({"lam": 2.0}))
    records = read_trials(tmp_path)
    assert [(r.name, r.order) for r in records] == [
        ("trial-0003-a1b2c3d4", 3), ("trial-0012-723b9867", 12), ("trial-0013-5e5e5e5e", 13)]
    assert records[2].status == "pending"


def test_a_trial_tune_is_retrying_is_running_not_errored(tmp_path: Path) -> None:
    import os

    from tuner.store.records import read_trials

    retried = make_trial(tmp_path, "trial-0001-aaaa0001", "running", [])
    failed = make_trial(tmp_path, "trial-0002-aaaa0002", "running", [])
    for trial, error_age, result_age in ((retried, 200, 100), (failed, 100, 200)):
        (trial / "error.txt").write_text("Traceback ...\n")
        now = 1_800_000_000
        os.utime(trial / "error.txt", (now - error_age, now - error_age))
        os.utime(trial / "result.json", (now - result_age, now - result_age))
    status = {r.path.name: r.status for r in read_trials(tmp_path)}
    assert status == {retried.name: "running", failed.name: "error"}


def test_a_trial_re_run_under_a_new_id_is_superseded_not_running(tmp_path: Path) -> None:
    """A resume from an older state copy re-runs a trial's configuration under a new id: the old folder,
    left running (or errored) and no longer named by Tune's state, is superseded, not missing work."""
    from tuner.store.records import read_trials
    from tuner.store.status import completion, superseded

    ghost = make_trial(tmp_path, "trial-0003-aaaa0003", "running", [1])  # the state copy predates it
    make_trial(tmp_path, "trial-0004-aaaa0004", "finished", [])  # the same configuration, re-run
    live = make_trial(tmp_path, "trial-0005-aaaa0005", "running", [1])
    (live / "params.json").write_text(json.dumps({"lam": 2.0}))
    twin = make_trial(tmp_path, "trial-0006-aaaa0006", "running", [1])  # same config, named: still running
    named = ("trial-0004-aaaa0004", "trial-0005-aaaa0005", "trial-0006-aaaa0006")  # Tune's newest state
    (tmp_path / "experiment_state-2026-12-02_10-00-00.json").write_text(json.dumps({"trial_data": [named]}))
    records = read_trials(tmp_path)

    assert superseded(records) == {ghost}
    assert (completion(4, records).ended, completion(4, records).running) == (1, 2)
    assert twin not in superseded(records)


def test_the_history_is_the_latest_attempts(tmp_path: Path) -> None:
    """A trial resumed from its epoch-3 checkpoint re-reports epoch 3 on; one that started over (its
    checkpoints were gone) reports from epoch 1 and diverged at 2: the earlier attempt's later epochs are
    not its history, so its status is the new attempt's."""
    from tuner.store.records import read_trials

    def write(name: str, rows: list[tuple[int, str]]) -> None:
        trial = make_trial(tmp_path, name, "running", [])
        lines = [json.dumps({"epoch": e, "status": st, "trial_id": name, "attempt": i})
                 for i, (e, st) in enumerate(rows)]
        (trial / "result.json").write_text("\n".join(lines) + "\n")

    write("trial-0001-aaaa0001", [(1, "running"), (2, "running"), (3, "running"), (4, "running"), (3, "running"),
                                  (4, "finished")])
    write("trial-0002-aaaa0002", [(1, "running"), (2, "running"), (3, "running"), (1, "running"), (2, "diverged")])
    resumed, restarted = read_trials(tmp_path)
    assert [(r["epoch"], r["attempt"]) for r in resumed.history] == [(1, 0), (2, 1), (3, 4), (4, 5)]
    assert resumed.status == "finished"
    assert [r["epoch"] for r in restarted.history] == [1, 2] and restarted.status == "diverged"


def test_a_full_filesystem_during_the_repair_leaves_no_half_copy(
        mount_tmpfs: Callable[[str], Path]) -> None:
    """The copy of the newest checkpoint does not fit (a real 1 MiB tmpfs): the error propagates, the half
    copy is removed and the newest checkpoint is intact."""
    fs = mount_tmpfs("1m")
    stale = make_trial(fs, "t1", "running", [3])
    state = os.urandom(700 * 1024)  # twice does not fit
    (stale / "checkpoint_000003" / "state.pt").write_bytes(state)

    with pytest.raises(OSError) as err:
        restore_missing_checkpoints(fs)

    assert err.value.errno == errno.ENOSPC or "No space left" in str(err.value)
    assert sorted(p.name for p in stale.iterdir()) == ["checkpoint_000003", "params.json", "result.json"]
    assert (stale / "checkpoint_000003" / "state.pt").read_bytes() == state


def test_epochs_reported_again_are_compared_with_their_first_report(tmp_path: Path) -> None:
    from tuner.store.records import _equal, read_trials
    from tuner.store.status import replay_line

    def report(epoch: int, score: float, clock: float, q: float = float("nan")) -> dict[str, object]:
        return {"epoch": epoch, "normalized_score": score, "q_mean": q, "actor_loss": -epoch / 3,
                "time_this_iter_s": clock, "time_rollout": 7 * clock, "timestamp": 1000 + clock,
                "hostname": f"host{clock}", "fqe_seconds": clock, "cpu": f"cpu {clock} (avx2)",
                "torch_threads": int(clock), "torch_version": f"2.{clock}", "gpu": ""}

    # Killed after epoch 3 with a checkpoint at 2, resumed: epoch 3 runs again (other clocks, host and named
    # machine, same numbers, NaN included); then started over from no checkpoint: epochs 1-2 again, epoch 2's score
    # different (as on another CPU's arithmetic).
    rows = [report(1, 1.5, 1), report(2, 2.5, 2), report(3, 3.5, 3),
            report(3, 3.5, 30), report(4, 4.5, 4),
            report(1, 1.5, 10), report(2, 2.25, 20)]
    for name, lines in (("trial-0001-aa", rows), ("trial-0002-bb", rows[:3])):
        trial = tmp_path / name
        trial.mkdir()
        (trial / "params.json").write_text(json.dumps({"base": {"dataset": "d.hdf5"}, "seeds": [0]}))
        (trial / "result.json").write_text("".join(json.dumps(r) + "\n" for r in lines))

    replayed, once = read_trials(tmp_path)
    assert [h["epoch"] for h in replayed.history] == [1, 2] and replayed.last["normalized_score"] == 2.25
    assert (replayed.replay.epochs, replayed.replay.differing) == (3, 1)  # epochs 3, 1 and 2 compared
    assert replayed.replay.examples == [(2, "normalized_score", 2.5, 2.25)]
    assert (once.replay.epochs, once.replay.differing) == (0, 0)
    assert replay_line([once]) is None
    line = replay_line([replayed, once])
    assert line is not None and line.startswith("epochs run again after a resume or a start over: 3 in 1 trial(s), "
                                                 "1 differing from their earlier report (trial-0001-aa epoch 2 "
                                                 "normalized_score 2.5 then 2.25)"), line
    nan = float("nan")  # NaN equals NaN in a replay, inside lists and mappings too; other values do not
    assert _equal([nan, 1.0], [float("nan"), 1.0]) and _equal({"a": [nan]}, {"a": [float("nan")]})
    assert not _equal([nan, 1.0], [nan, 1.5]) and not _equal([1.0], [1.0, 2.0]) and not _equal({"a": 1}, {"b": 1})
    equal = rows[:5]  # the resume alone: its epoch reported again is equal
    (tmp_path / "trial-0001-aa" / "result.json").write_text("".join(json.dumps(r) + "\n" for r in equal))
    assert replay_line(read_trials(tmp_path)) == ("epochs run again after a resume or a start over: 1 in 1 trial(s), "
                                                  "every one equal to its earlier report (same seed, same result)")
