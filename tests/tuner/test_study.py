"""``mbrl-tune study``: a tiny study end to end through the real CLI (generation, a real Ax sweep on a
local Ray instance, compare, calibrate, report), killed with SIGKILL inside a stage and between stages and
completed by the same command; and study files refused before any work starts."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.tuner.tune_state import reported_epochs, resumable_from_checkpoint
from trials.config import TrialConfig
from trials.data.dataset import load_dataset
from trials.models.pool import pool_key
from tuner.store.records import read_trials
from tuner.store.status import superseded

BIN = Path(sys.executable).parent
CLI = [str(BIN / "mbrl-tune")]
ENV = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "RAY_AUTH_MODE": "token"}

TINY = {
    "name": "tiny", "storage": "out",
    "datasets": [{"path": "data/hopper-random-2k.hdf5", "env": "hopper", "level": "random", "size": 2000}],
    "space": "quick", "trials": 6, "init_trials": 3, "concurrency": 2,
    "budget": {"preset": "tiny", "set": {"dynamics.max_epochs": 20}},
    "compare": {"seeds": 2}, "calibrate": {"horizons": [1, 2], "states": 40},
}


def write_study(folder: Path, **changes: object) -> Path:
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump({**TINY, **changes}))
    return path


def run_until(study: Path, marker: str | None, timeout: float = 900, interrupt: bool = False,
              kill_when: Callable[[], bool] | None = None) -> tuple[int | None, str]:
    """Run ``mbrl-tune study``; with ``marker``, SIGKILL its whole session (driver and in-process Ray) as
    soon as a line containing it is printed. Returns (exit code or None if killed, output). With
    ``interrupt``, send the driver alone one SIGINT (Ctrl-C) at the marker instead, and let it end. With
    ``kill_when``, SIGKILL the session as soon as that check of the study's files holds."""
    proc = subprocess.Popen([*CLI, "study", str(study)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=ENV, cwd=study.parent, start_new_session=True)
    killed = threading.Event()

    def watch() -> None:
        assert kill_when is not None
        while proc.poll() is None:
            if kill_when():
                killed.set()  # before the kill: the reader sees the driver's end as soon as it dies
                os.killpg(proc.pid, signal.SIGKILL)  # the driver first, at once: it records the trials' results
                subprocess.run(["pkill", "-9", "-s", str(proc.pid)], check=False)
                return
            time.sleep(0.05)

    if kill_when is not None:
        threading.Thread(target=watch, daemon=True).start()
    lines = []
    deadline = time.time() + timeout
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            lines.append(line)
            if interrupt and marker is not None and marker in line:
                proc.send_signal(signal.SIGINT)
                marker = None  # once: a second Ctrl-C would skip the graceful save
            elif (marker is not None and marker in line) or time.time() > deadline:
                subprocess.run(["pkill", "-9", "-s", str(proc.pid)], check=False)
                proc.wait(timeout=60)
                return None, "".join(lines)
        code = proc.wait(timeout=60)
        return (None if killed.is_set() else code), "".join(lines)
    finally:
        subprocess.run(["pkill", "-9", "-s", str(proc.pid)], check=False)  # whatever Ray left behind


def test_study_survives_kills_inside_and_between_stages(tmp_path: Path) -> None:
    study = write_study(tmp_path)
    folder = tmp_path / "out" / "tiny"
    exp = folder / "sweeps" / "hopper-random-2k" / "hopper-random-2k"

    code, out = run_until(study, "sweep trials, 0/")  # inside the sweep stage: after its first finished trial
    assert code is None, out
    kept = {r.trial_id: r.last["score"] for r in read_trials(exp) if r.status == "finished"}
    assert 1 <= len(kept) < 6, out
    status = subprocess.run([*CLI, "status", str(folder)], capture_output=True, text=True, env=ENV, timeout=120)
    assert status.returncode == 0, status.stderr
    assert "generate  done" in status.stdout and "compare   not started" in status.stdout, status.stdout
    assert f"sweep     started, not finished ({len(kept)}/6 trials finished" in status.stdout, status.stdout
    records = read_trials(exp)
    running = [r for r in records if r.status == "running" and r.path not in superseded(records)]
    for r in running:  # the trials the kill cut short, with the epoch they last reported
        assert f"{r.name} epoch {r.last['epoch']}/3" in status.stdout, status.stdout
    assert ("in progress (last reports): " in status.stdout) == bool(running), status.stdout

    code, out = run_until(study, "hopper-random-2k/sweep: done")  # between the sweep and the comparison
    assert code is None, out
    assert "hopper-random-2k/generate: done earlier" in out and "resuming the sweep" in out
    # The sweep has one seed and two cores: the idle one trains a fresh-seed pool of the comparison, the
    # first one not stored yet (seed 1, or seed 2 if the first run's spare training stored seed 1).
    assert re.search(r"pool pool-\S+-s[12]-\S+: (trained|loaded) \(\d+ s\) \(spare\)", out), out[-3000:]
    spare = {p.stem for p in (folder / "sweeps/hopper-random-2k/pools").glob("pool-*-s1-*.pt")}
    assert len(spare) == 1, spare

    # Inside the comparison, once a run is past a checkpoint and not finished. The kill at "sweep: done"
    # may have let the comparison start: its newest run-NNN is the one to watch.
    compare = folder / "sweeps/hopper-random-2k/compare/mopo_official/hopper-random-2k"

    def newest_run() -> Path:
        return max(compare.glob("run-*"), default=compare / "run-001")

    code, out = run_until(study, None, kill_when=lambda: bool(resumable_from_checkpoint(newest_run())))
    assert code is None, out
    run_dir = newest_run()
    cut = resumable_from_checkpoint(run_dir)
    assert cut, "the study was killed with a checkpointed comparison run unfinished"
    runs = sorted(compare.glob("run-*"))

    code, out = run_until(study, None)
    assert code == 0, out[-3000:]
    assert "[compare hopper-random-2k] resuming" in out, out[-3000:]
    assert "hopper-random-2k: comparison table in " in out and "difference best - baseline on fresh seeds" in out
    assert sorted(compare.glob("run-*")) == runs, "the cut-short runs went on in their run"
    for before in cut:
        after = next(r for r in read_trials(run_dir) if r.path == before.path)
        epochs = reported_epochs(after)
        assert after.status == "finished" and epochs.count(1) == 1, (before.name, epochs)  # from its checkpoint
    assert "hopper-random-2k/sweep: done earlier" in out and "generate: done earlier" in out
    assert "hopper-random-2k/sweep: started" not in out, "a finished stage is never re-run"

    records = [r for r in read_trials(exp) if r.status == "finished"]
    assert len(records) == 6
    # Same seed, same code, same CPU: every epoch a resume (or a start over) ran again reported what it had
    # reported before the kill, in the sweep and in the comparison.
    again = [r for r in [*read_trials(exp), *read_trials(run_dir)] if r.replay.epochs]
    assert all(r.replay.differing == 0 for r in again), [(r.name, r.replay) for r in again]
    scores = {r.trial_id: r.last["score"] for r in records}
    assert all(scores[t] == s for t, s in kept.items()), "trials finished before the kill are kept as they were"
    stages = json.loads((folder / "stages.json").read_text())
    assert all(stages[f"hopper-random-2k/{s}"]["done"] for s in ("generate", "sweep", "compare", "calibrate"))
    assert stages["report"]["done"]
    table = json.loads((folder / "sweeps/hopper-random-2k/compare/mopo_official/comparison.json").read_text())
    row = table["rows"][0]
    assert row["n_best"] == 2 and row["n_baseline"] == 2 and row["fresh_seeds"] == [1, 2]
    # The sweep stage's seed-1 pool is the one the comparison's best arm loads, and no pool trained twice.
    plan = json.loads((folder / "sweeps/hopper-random-2k/compare/mopo_official/plan.json").read_text())
    entry = plan["datasets"][0]
    best = TrialConfig.from_dict(next(a for a in entry["arms"] if a["name"] == "best")["config"], "plan")
    assert {pool_key(load_dataset(entry["dataset"]).content_hash(), 1, best.dynamics)} == spare
    keys = [line.split()[0] for line in (folder / "sweeps/hopper-random-2k/pools/trainings.log").read_text()
            .splitlines()]
    assert spare <= set(keys) and len(keys) == len(set(keys)), keys
    report = (folder / "report" / "report.html").read_text()
    assert 'id="front"' in report and "hopper-random-2k (mopo_official)" in report
    assert (folder / "sweeps/hopper-random-2k/calibration/calibration.csv").is_file()
    status = subprocess.run([*CLI, "status", str(folder)], capture_output=True, text=True, env=ENV, timeout=120)
    assert status.returncode == 0 and "not finished" not in status.stdout and "not started" not in status.stdout
    assert status.stdout.count(" done (") == 5 and "report: done (" in status.stdout, status.stdout  # 4 stages, report
    assert "6/6 sweep trials, 5/5 compare runs done" in status.stdout, status.stdout

    # Done is done: the same command runs nothing and says so; a changed study file is refused.
    code, out = run_until(study, None, timeout=120)
    assert code == 0 and "started" not in out, out
    changed = write_study(tmp_path, trials=7)
    done = subprocess.run([*CLI, "study", str(changed)], capture_output=True, text=True, env=ENV, timeout=120)
    assert done.returncode == 2 and "key 'trials' differs" in done.stderr, done.stderr


def test_ctrl_c_stops_the_study_where_it_is(tmp_path: Path) -> None:
    """One Ctrl-C inside the first dataset's sweep: the sweep saves and the study stops there (exit 130),
    neither going on to the next dataset nor recording the sweep as done."""
    second = {"path": "data/walker2d-random-2k.hdf5", "env": "walker2d", "level": "random", "size": 2000}
    study = write_study(tmp_path, datasets=[*TINY["datasets"], second])  # type: ignore[list-item]
    folder = tmp_path / "out" / "tiny"
    code, out = run_until(study, "sweep trials, 0/", interrupt=True, timeout=600)
    assert code == 130, out[-3000:]
    assert "hopper-random-2k/sweep: interrupted" in out and "Traceback" not in out, out[-3000:]
    assert "walker2d-random-2k" not in out.split("hopper-random-2k/sweep: interrupted")[1], out[-3000:]
    assert not (tmp_path / "data" / "walker2d-random-2k.hdf5").exists(), "the next dataset was not started"
    stages = json.loads((folder / "stages.json").read_text())
    assert stages["hopper-random-2k/generate"]["done"] and not stages["hopper-random-2k/sweep"]["done"]
    finished = [r for r in read_trials(folder / "sweeps/hopper-random-2k/hopper-random-2k") if r.status == "finished"]
    assert 1 <= len(finished) < 6, out[-3000:]


BAD = {
    "unknown key": ({"trails": 3}, "unknown key 'trails'"),
    "missing dataset": ({"datasets": [{"path": "absent.hdf5"}]}, "absent.hdf5: file not found"),
    "half a recipe": ({"datasets": [{"path": "x.hdf5", "env": "hopper"}]}, "give env, level and size together"),
    "unknown env": ({"datasets": [{"path": "x.hdf5", "env": "ant", "level": "random", "size": 10}]},
                    "env 'ant' unknown"),
    "unknown level": ({"datasets": [{"path": "x.hdf5", "env": "hopper", "level": "novice", "size": 10}]},
                      "level 'novice' unknown; known: random, medium, expert, medium-replay, medium-expert"),
    "score window beyond the evaluations": ({"budget": {"preset": "tiny", "set": {"score_window": 5}}},
                                            "score_window=5 needs that many evaluations, but 3 epochs"),
    "bad budget value": ({"budget": {"preset": "tiny", "set": {"rollout.horizon": 0}}}, "field 'rollout.horizon'"),
    "no baseline for the dataset": ({"baselines": "offlinerl_kit"}, "has no setting for 'hopper-random'"),
    "init trials beyond trials": ({"init_trials": 9}, "'init_trials': 9 exceeds trials=6"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_study_files_are_refused_before_any_work(tmp_path: Path, case: str, monkeypatch: pytest.MonkeyPatch,
                                                     cli: Callable[..., subprocess.CompletedProcess]) -> None:
    changes, message = BAD[case]
    study = write_study(tmp_path, **changes)
    monkeypatch.chdir(tmp_path)
    done = cli("study", str(study))  # refused before Ray starts: the entry point in this process
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "data").exists(), "nothing is written"
