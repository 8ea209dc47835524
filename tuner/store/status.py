"""The trials table of a sweep, as ``mbrl-tune status`` prints it."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from tuner.store.durations import duration
from tuner.store.records import ENDED, TrialRecord, read_trials, tune_state_text
from tuner.store.spec import SweepSpec


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if math.isfinite(value) else str(value)
    return str(value)


def status_table(sweep_dir: Path) -> str:
    """One block per dataset: a row per trial (status, epochs done of its total, the time a running trial
    has left at its pace so far, score, per-seed scores, searched values), then the count against the
    target and the best trial."""
    spec = SweepSpec.load(sweep_dir)
    objective = "" if spec.objective == "simulator" else f", objective {spec.objective} ({spec.metric})"
    lines = [f"sweep {spec.name}: searcher {spec.searcher}, {spec.trials} trials per dataset, seeds {spec.seeds}"
             f"{objective}"]
    extra = [] if spec.objective == "simulator" else [spec.metric]
    for dataset in spec.datasets:
        records = read_trials(spec.root / spec.experiment_name(dataset))
        keys = sorted({k for r in records for k in r.overrides})
        header = ["trial", "status", "epoch", "eta", "score", *[f"seed{s}" for s in spec.seeds], *extra, *keys]
        rows = [header]
        done = completion(spec.trials, records)
        gone = done.superseded
        for r in records:
            rows.append([r.name, "superseded" if r.path in gone else r.status, epoch_progress(r),
                         "-" if r.path in gone else _eta(r), _fmt(r.last.get("score", "-")),
                         *[_fmt(r.last.get(f"score_seed{s}", "-")) for s in spec.seeds],
                         *[_fmt(r.last.get(k, "-")) for k in extra],
                         *[_fmt(r.overrides.get(k, "-")) for k in keys]])
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        lines.append(f"\n{dataset}")
        lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) for row in rows]
        lines.append("  " + done.line())
        replayed = replay_line(records)
        if replayed:
            lines.append("  " + replayed)
        best = best_trials(records, 1, spec.metric)
        if best:
            by = "" if spec.objective == "simulator" else f" by {spec.metric} {_fmt(best[0].last[spec.metric])},"
            lines.append(f"  best:{by} {best[0].name} score {_fmt(best[0].last['score'])} {best[0].overrides}")
    return "\n".join(lines)


def _short(value: object, width: int = 40) -> str:
    text = f"{value:.6g}" if isinstance(value, float) else str(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def _pair(first: object, again: object) -> str:
    """Two differing values, short, in full where the short forms look alike (a last-digit difference)."""
    a, b = _short(first), _short(again)
    if a == b:
        a, b = repr(first), repr(again)
    return f"{a} then {b}"


def replay_line(records: list[TrialRecord]) -> str | None:
    """Whether the epochs these trials reported a second time (after a resume or a start over) came back
    equal to the reports they replace (:class:`tuner.store.records.Replay`); None when none was reported twice."""
    replayed = [r for r in records if r.replay.epochs]
    if not replayed:
        return None
    epochs = sum(r.replay.epochs for r in replayed)
    differing = sum(r.replay.differing for r in replayed)
    head = f"epochs run again after a resume or a start over: {epochs} in {len(replayed)} trial(s)"
    if not differing:
        return f"{head}, every one equal to its earlier report (same seed, same result)"
    named = [f"{r.name} epoch {epoch} {key} {_pair(first, again)}"  # the first of each trial
             for r in replayed for epoch, key, first, again in r.replay.examples[:1]][:3]
    return (f"{head}, {differing} differing from their earlier report ({'; '.join(named)}): not reproducible as run "
            f"(another CPU, library version or a bug)")


def _total_epochs(record: TrialRecord) -> int | None:
    try:
        return record.trial_config().epochs
    except ValueError:
        return None


def epoch_progress(record: TrialRecord) -> str:
    """``done/total`` epochs of a trial (``done`` alone when its config no longer validates)."""
    total = _total_epochs(record)
    done = record.last.get("epoch", 0)
    return f"{done}/{total}" if total else str(done)


def _eta(record: TrialRecord) -> str:
    """Time left of a running trial, from its own pace so far (``-`` otherwise)."""
    total, done, spent = _total_epochs(record), record.last.get("epoch", 0), record.last.get("time_total_s")
    if record.status != "running" or not total or not done or not isinstance(spent, (int, float)):
        return "-"
    return duration(spent / done * (total - done))


@dataclass
class Completion:
    """How far one experiment is from its trial count."""

    target: int
    ended: int
    """Trials that finished, diverged or were stopped early: they will not run again."""
    errored: int
    running: int
    """Trials started but neither ended nor errored (a killed driver leaves them so)."""
    disk_full: bool = False
    """Whether an errored trial failed on a full filesystem (ENOSPC in its error file)."""
    superseded: frozenset[Path] = frozenset()
    """Folders of trials counted in none of the above (:func:`superseded`)."""

    @property
    def missing(self) -> int:
        return max(self.target - self.ended - self.errored, 0)

    @property
    def complete(self) -> bool:
        return self.ended >= self.target and self.errored == 0

    def line(self) -> str:
        text = f"{self.ended}/{self.target} trials complete"
        if not self.complete:
            text += f" (incomplete: {self.errored} errored, {self.missing} missing)"
        return text


def superseded(records: list[TrialRecord]) -> set[Path]:
    """Folders of trials that did not end and never will, because their configuration ended in another
    trial: a resume from an older state copy re-runs such a trial under a new trial id. They are errored
    ones, or ones a killed driver left running that Tune's newest experiment state no longer names. They
    are no longer missing work."""
    key = {r.path: json.dumps(r.overrides, sort_keys=True) for r in records}
    done_configs = {key[r.path] for r in records if r.status in ENDED}
    candidates = [r for r in records if r.status not in ENDED and key[r.path] in done_configs]
    if not candidates:
        return set()
    named = tune_state_text(candidates[0].path.parent)
    return {r.path for r in candidates if r.status == "error" or r.trial_id not in named}


def completion(target: int, records: list[TrialRecord]) -> Completion:
    ended = sum(r.status in ENDED for r in records)
    gone = superseded(records)
    errored = [r for r in records if r.status == "error" and r.path not in gone]
    full = any("No space left on device" in _read(r.path / "error.txt") for r in errored)
    running = sum(r.status not in ENDED and r.status != "error" and r.path not in gone for r in records)
    return Completion(target, ended, len(errored), running, full, frozenset(gone))


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def sweep_completion(sweep_dir: Path) -> dict[str, Completion]:
    """Per dataset file of the sweep, how complete its experiment is."""
    spec = SweepSpec.load(sweep_dir)
    return {d: completion(spec.trials, read_trials(spec.root / spec.experiment_name(d))) for d in spec.datasets}


def best_trials(records: list[TrialRecord], k: int, metric: str = "score") -> list[TrialRecord]:
    """The ``k`` best finished trials by ``metric`` of their last report (the sweep's objective:
    ``SweepSpec.metric``). Diverged trials are left out: their score (the last finite evaluation) tells the
    searcher the region is bad, but a diverging configuration is no answer."""
    scored = [r for r in records if r.status == "finished"
              and isinstance(r.last.get(metric), (int, float)) and math.isfinite(r.last[metric])]
    return sorted(scored, key=lambda r: -r.last[metric])[:k]
