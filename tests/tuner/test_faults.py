"""Faults a long sweep meets, injected for real: damaged state files (as a crash mid-write leaves them),
a replaced dataset, and a full filesystem (a real tmpfs of a few MiB). Each one: nothing finished is lost,
the user gets one line and a truthful exit code, and the resumed sweep reaches its count."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.tuner.tune_state import resumable_from_checkpoint
from trials.data.dataset import load_hdf5, save_hdf5
from tuner.faults.recovery import BACKUP_DIR
from tuner.store.records import ENDED, read_trials
from tuner.store.status import superseded

BIN = Path(sys.executable).parent
CLI = [str(BIN / "mbrl-tune")]
ENV = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "RAY_AUTH_MODE": "token"}


def sweep_cmd(dataset: Path, storage: Path, name: str, trials: int) -> list[str]:
    return [*CLI, "sweep", "--space", "quick", "--dataset", str(dataset), "--trials", str(trials), "--storage",
            str(storage), "--name", name, "--preset", "tiny", "--init-trials", "3", "--searcher", "random"]


def finished(exp: Path) -> dict[str, float]:
    return {r.trial_id: r.last["score"] for r in read_trials(exp) if r.status == "finished"}


def kill_after(cmd: list[str], exp: Path, n: int, timeout: float = 600, checkpointed: bool = False) -> None:
    """Run ``cmd`` and SIGKILL its session once ``n`` trials of ``exp`` have finished (and, with
    ``checkpointed``, another has a checkpoint)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV,
                            start_new_session=True)
    deadline = time.time() + timeout  # under load tiny trials can take minutes; never a time assertion
    while ((len(finished(exp)) < n or (checkpointed and not resumable_from_checkpoint(exp)))
           and time.time() < deadline and proc.poll() is None):
        time.sleep(0.2)
    subprocess.run(["pkill", "-9", "-s", str(proc.pid)], check=False)
    proc.wait(timeout=60)


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


def test_damaged_state_files_are_replaced_by_their_last_good_copy(hopper_random_file: Path, tmp_path: Path) -> None:
    exp = tmp_path / "d" / hopper_random_file.stem
    kill_after(sweep_cmd(hopper_random_file, tmp_path, "d", 5), exp, 2)
    before = finished(exp)
    assert 2 <= len(before) < 5
    assert (exp / BACKUP_DIR).is_dir()
    for pattern in ("experiment_state-*.json", "searcher-state-*.pkl", "tuner.pkl"):
        truncate(sorted(exp.glob(pattern))[-1])  # what a crash mid-write or a full disk leaves
    for ckpt in exp.glob("*/checkpoint_*/trial_state.pt"):  # and the checkpoints of unfinished trials
        truncate(ckpt)

    resumed = subprocess.run([*CLI, "resume", str(tmp_path / "d")], capture_output=True, text=True, env=ENV,
                             timeout=600, start_new_session=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "replaced by the copy kept in .state-backup/" in resumed.stdout
    assert "Traceback" not in resumed.stderr + resumed.stdout
    after = finished(exp)
    assert len(after) >= 5 and all(after[t] == s for t, s in before.items()), "nothing finished is lost"
    records = read_trials(exp)  # a trial the older state copy did not name was re-run under a new id
    assert all(r.status in ENDED or r.path in superseded(records) for r in records), \
        [(r.name, r.status) for r in records]


def test_damaged_state_without_a_good_copy_is_refused_in_one_line(hopper_random_file: Path, tmp_path: Path) -> None:
    exp = tmp_path / "n" / hopper_random_file.stem
    kill_after(sweep_cmd(hopper_random_file, tmp_path, "n", 4), exp, 1)
    shutil.rmtree(exp / BACKUP_DIR)
    truncate(sorted(exp.glob("experiment_state-*.json"))[-1])
    resumed = subprocess.run([*CLI, "resume", str(tmp_path / "n")], capture_output=True, text=True, env=ENV,
                             timeout=300)
    assert resumed.returncode == 2
    assert resumed.stderr.count("\n") == 1 and "damaged (JSONDecodeError" in resumed.stderr
    assert "--warm-start" in resumed.stderr and "Traceback" not in resumed.stderr


def test_a_replaced_dataset_is_refused_by_resume_compare_and_export(
        hopper_random_file: Path, tmp_path: Path, cli: Callable[..., subprocess.CompletedProcess]) -> None:
    data = tmp_path / "hopper-random.hdf5"
    shutil.copyfile(hopper_random_file, data)
    done = subprocess.run(sweep_cmd(data, tmp_path, "p", 2), capture_output=True, text=True, env=ENV, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    original = load_hdf5(data)
    changed = load_hdf5(data)
    changed.rewards = changed.rewards * 2.0  # same path, same shape, other content
    save_hdf5(changed, data)
    resumed = subprocess.run([*CLI, "resume", str(tmp_path / "p")], capture_output=True, text=True, env=ENV,
                             timeout=300)
    for args, out in ((["resume"], resumed),  # refused before Ray starts; compare and export in this process
                      (["compare"], cli("compare", str(tmp_path / "p"), "--seeds", "1")),
                      (["export"], cli("export", str(tmp_path / "p"), "--out", str(tmp_path / "best.yaml"),
                                       "--dataset", data.stem))):
        assert out.returncode == 2, (args, out.stderr[-2000:])
        assert out.stderr.count("\n") == 1 and "the dataset changed since sweep 'p' started" in out.stderr
        assert original.content_hash() in out.stderr and changed.content_hash() in out.stderr
    assert not (tmp_path / "best.yaml").exists()


@pytest.fixture
def small_fs(mount_tmpfs: Callable[[str], Path]) -> Path:
    """A real filesystem of 64 MiB (tmpfs), mounted for the test and unmounted after it."""
    return mount_tmpfs("64m")


def test_full_filesystem_mid_sweep_then_resume_completes(hopper_random_file: Path, small_fs: Path,
                                                         fill: Callable[[Path], Path]) -> None:
    exp = small_fs / "f" / hopper_random_file.stem
    proc = subprocess.Popen(sweep_cmd(hopper_random_file, small_fs, "f", 6), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV, start_new_session=True)
    deadline = time.time() + 1500  # under load two tiny trials can take many minutes; never a time assertion
    while len(finished(exp)) < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    if len(finished(exp)) < 2:
        subprocess.run(["pkill", "-9", "-s", str(proc.pid)], check=False)
        pytest.fail(f"the sweep did not finish 2 trials before the disk was to fill (exit {proc.poll()})")
    pre = finished(exp)
    filler = fill(small_fs)
    try:
        out, err = proc.communicate(timeout=600)
    finally:
        subprocess.run(["pkill", "-9", "-s", str(proc.pid)], check=False)
    before = finished(exp)
    assert proc.returncode not in (0, None), out[-2000:]
    assert "filesystem" in err and "full" in err and "Traceback" not in err, err[-3000:]
    # Tune rewrites every trial's result.json onto the storage as it syncs; on the full disk a rewrite cut
    # short once emptied finished trials' files (tuner.faults.storage): what had finished is still there, unchanged
    assert all(before.get(t) == s for t, s in pre.items()), (pre, before)

    # While the disk stays full, status names the cause: the failed trials may have had no room to say it
    # (the filler, topped up, takes whatever the ended sweep freed).
    fill(small_fs)
    status = subprocess.run([*CLI, "status", str(small_fs / "f")], capture_output=True, text=True, env=ENV,
                            timeout=300)
    assert "incomplete" in status.stderr and "is full (no space left on device)" in status.stderr, status.stderr
    filler.unlink()  # space freed: the same sweep resumes to its count
    resumed = subprocess.run([*CLI, "resume", str(small_fs / "f")], capture_output=True, text=True, env=ENV,
                             timeout=600, start_new_session=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    after = finished(exp)
    assert len(after) >= 6 and all(after[t] == s for t, s in before.items())


def test_a_sweep_moved_to_another_mount_point_resumes_there(hopper_random_file: Path, tmp_path: Path) -> None:
    """Another machine that sees the same storage at another path: sweep.json records the datasets relative
    to the sweep, trials find the pools where the sweep is now, and the trials the searcher creates after
    the resume are written there too (Tune's search-generator state kept the old path). The copy left an
    unfinished trial's checkpoints out: that trial starts over instead of failing every restore."""
    old, new = tmp_path / "mnt-a", tmp_path / "mnt-b"
    (old / "data").mkdir(parents=True)
    data = old / "data" / "hopper-random.hdf5"
    shutil.copyfile(hopper_random_file, data)
    exp = old / "sweeps" / "m" / data.stem
    kill_after(sweep_cmd(data, old / "sweeps", "m", 4), exp, 1, checkpointed=True)
    before = finished(exp)
    assert 1 <= len(before) < 4
    unfinished = [r.path for r in resumable_from_checkpoint(exp)]
    assert unfinished, "the sweep was killed with a checkpointed trial running"
    for folder in unfinished[0].glob("checkpoint_*"):  # a copy of the sweep that left its checkpoints out
        shutil.rmtree(folder)
    shutil.move(old, new)  # the whole storage, seen under another path

    resumed = subprocess.run([*CLI, "resume", str(new / "sweeps" / "m")], capture_output=True, text=True, env=ENV,
                             timeout=600, start_new_session=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    after = finished(new / "sweeps" / "m" / data.stem)
    assert len(after) >= 4 and all(after[t] == s for t, s in before.items())
    assert not old.exists(), "nothing was written under the old path"
    restarted = [r for r in read_trials(new / "sweeps" / "m" / data.stem) if r.path.name == unfinished[0].name]
    assert restarted[0].status == "finished", "the trial whose checkpoints were gone started over and finished"
    log = (new / "sweeps" / "m" / "pools" / "trainings.log").read_text().splitlines()
    assert len(log) == 1, "the pool trained before the move was found, not trained again"
    best = new / "best.yaml"
    exported = subprocess.run([*CLI, "export", str(new / "sweeps" / "m"), "--out", str(best)], capture_output=True,
                              text=True, env=ENV, timeout=120)
    assert exported.returncode == 0, exported.stderr
    config = yaml.safe_load(best.read_text())["config"]  # runs where the sweep is now
    assert config["dataset"] == str(new / "data" / data.name)
    assert config["pool_dir"] == str(new / "sweeps" / "m" / "pools")


def test_a_trial_count_ahead_of_the_trial_list_still_runs_to_the_count(hopper_random_file: Path,
                                                                       tmp_path: Path) -> None:
    """What a full disk can leave: Tune's small search-generator state written (it counts every trial
    created), its experiment state not (the old file stays whole, one trial shorter). The resume must still
    run the sweep to its count, not end with a trial missing that no later resume would run."""
    exp = tmp_path / "c" / hopper_random_file.stem
    kill_after(sweep_cmd(hopper_random_file, tmp_path, "c", 4), exp, 2, checkpointed=True)
    running = {r.trial_id for r in resumable_from_checkpoint(exp)}
    assert running, "the sweep was killed before a third trial had a checkpoint"
    state_file = sorted(exp.glob("experiment_state-*.json"))[-1]
    state = json.loads(state_file.read_text())
    created = len(state["trial_data"])
    state["trial_data"] = [t for t in state["trial_data"] if json.loads(t[0])["trial_id"] not in running]
    assert len(state["trial_data"]) == created - 1
    state_file.write_text(json.dumps(state))  # the unfinished trial is now unknown to the experiment state

    resumed = subprocess.run([*CLI, "resume", str(tmp_path / "c")], capture_output=True, text=True, env=ENV,
                             timeout=600, start_new_session=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"counted {created} trials created, the experiment state lists {created - 1}; set to {created - 1}" \
        in resumed.stdout
    assert len(finished(exp)) >= 4
