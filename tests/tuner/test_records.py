"""Reading and repairing a Tune experiment folder with the sweep's own file layout."""

from __future__ import annotations

import json
from pathlib import Path

from tuner.records import restore_missing_checkpoints


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
