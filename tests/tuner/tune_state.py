"""What a killed Tune experiment left, read from its files: the tests that kill a sweep or a study and
resume it check with these that the resume continues trials from their checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

from tuner.store.records import TrialRecord, read_trials


def resumable_from_checkpoint(run_dir: Path) -> list[TrialRecord]:
    """The trials of a Tune experiment that have not ended and that the state Tune last wrote names with a
    checkpoint (a resume continues them from it); the state pickles the checkpoint's path as hex."""
    states = sorted(run_dir.glob("experiment_state-*.json"))
    if not states:
        return []
    try:
        trial_data = json.loads(states[-1].read_text())["trial_data"]
    except (OSError, ValueError, KeyError):
        return []  # being rewritten
    named = {json.loads(meta)["trial_id"] for meta, runtime in trial_data
             if b"checkpoint_0" in bytes.fromhex(json.loads(runtime)["checkpoint_manager"]["value"])}
    return [r for r in read_trials(run_dir) if r.status == "running" and r.trial_id in named
            and list(r.path.glob("checkpoint_*/trial_state.pt"))]


def reported_epochs(record: TrialRecord) -> list[int]:
    """Every epoch the trial reported, in order, across its attempts (a start over reports 1 again)."""
    rows = (record.path / "result.json").read_text().splitlines()
    return [int(json.loads(row)["epoch"]) for row in rows if row.strip()]
