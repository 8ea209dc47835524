"""``confirm``: a tiny study with a confirm stage end to end through the real CLI, killed with SIGKILL inside
the confirmation and completed by the same command with no run repeated or lost; the finished study moved
to another folder gives the same tables; bad input refused in one line."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from analysis.confirm import curves
from tests.tuner.test_study import CLI, ENV, run_until, write_study
from tests.tuner.tune_state import reported_epochs, resumable_from_checkpoint
from trials.host import cpu_kind
from tuner.run.compare import run_key
from tuner.run.confirm import planned_runs
from tuner.store.confirm_plan import (
    CONFIRM,
    RECENT_EPOCHS,
    SEARCH,
    ConfirmArm,
    ConfirmDataset,
    ConfirmProgress,
    confirm_progress,
    cost_line,
    load_plan,
    pending_runs,
    run_seconds,
    wall_seconds,
)
from tuner.store.durations import duration
from tuner.store.records import read_trials

CONFIRM_BLOCK = {"top_k": 2, "seeds": 1, "set": {"epochs": 30}}
STEM = "hopper-random-2k"


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=ENV, cwd=cwd, timeout=600)


def test_confirm_stage_survives_a_kill_and_its_study_moves(tmp_path: Path) -> None:
    home = tmp_path / "first"
    home.mkdir()
    study = write_study(home, trials=4, init_trials=3, compare={"seeds": 1}, confirm=CONFIRM_BLOCK)
    sweep = home / "out" / "tiny" / "sweeps" / STEM
    runs_dir = sweep / "confirm" / "mopo_official" / STEM

    def newest_run() -> Path:
        return max(runs_dir.glob("run-*"), default=runs_dir / "run-001")

    # Killed (the driver and its in-process Ray) once a confirm run is past a checkpoint Tune's state names.
    code, out = run_until(study, None, kill_when=lambda: bool(resumable_from_checkpoint(newest_run())))
    assert code is None, out[-3000:]
    assert f"[confirm {STEM}] 3 runs at 1,200 updates and 1 at 120: about " in out, "the expected cost comes first"
    cut = resumable_from_checkpoint(newest_run())
    assert cut, "killed with a checkpointed confirm run unfinished"
    mid = load_plan(runs_dir.parent)
    assert mid is not None
    progress = confirm_progress(mid, mid.datasets[0])
    assert progress.running and progress.resumable >= 1 and progress.pending == pending_runs(mid, mid.datasets[0])
    cut_short = {run_key(r.trial_config().to_dict()): r for r in read_trials(newest_run()) if r.status == "running"}
    for (arm, budget, _, config), left in zip(progress.pending, progress.runs_left, strict=True):
        record = cut_short.get(run_key(config))
        if record is None:  # not started: the sweep's per-update time
            assert left == pytest.approx(run_seconds(mid.datasets[0], arm, budget)), arm
            continue
        # In progress: the epochs after its last checkpoint (a resume repeats the rest), at its pace lately.
        cfg, epoch = record.trial_config(), int(record.last["epoch"])
        recent = [h["time_this_iter_s"] for h in record.history[-RECENT_EPOCHS:]]
        assert left == pytest.approx((cfg.epochs - epoch + epoch % cfg.checkpoint_every) * sum(recent) / len(recent))
    drawn = curves(mid, mid.datasets[0])  # the report's curves tell the run in progress from the finished ones
    assert drawn["running"].any() and (~drawn["running"]).any(), drawn
    ended_before = {r.path: r.last["score"] for r in read_trials(newest_run()) if r.status == "finished"}
    status = _cli("status", "out/tiny", cwd=home)  # the time left counts the confirm stage's runs too
    left = r"; [2-5]/6 confirm runs done, about [\d.]+ (s|min|h) left \(\d at a time\)"
    assert re.search(left, status.stdout), status.stdout
    of_sweep = _cli("status", f"out/tiny/sweeps/{STEM}", cwd=home)  # and per sweep, the wall and run time left
    assert re.search(r"confirm mopo_official .*: [2-5]/6 runs finished, about [\d.]+ (s|min|h) left at 2 at a time "
                     r"\([\d.]+ (s|min|h) of run time", of_sweep.stdout), of_sweep.stdout

    code, out = run_until(study, None)
    assert code == 0, out[-3000:]
    assert f"[confirm {STEM}] resuming" in out, out[-3000:]
    assert re.search(rf"\[confirm {STEM}\] \d runs at 1,200 updates and \d at 120, 1 resumed from a checkpoint: about ",
                     out), "the cost printed on resuming counts what the checkpoint keeps"
    assert f"{STEM}/compare: done earlier" in out and f"{STEM}/confirm: done in" in out, out[-3000:]
    plan = load_plan(runs_dir.parent)
    assert plan is not None and [a.name for a in plan.datasets[0].arms] == ["baseline", "best1", "best2"]
    entry = plan.datasets[0]
    assert entry.seeds == [1] and entry.updates == {SEARCH: 3 * 40, CONFIRM: 30 * 40}
    # No run repeated, none lost: every planned run ended once, across the run folders and the comparison
    # (the baseline and best1 at the search budget are the comparison's runs, read from there).
    made = [r for run in sorted(runs_dir.glob("run-*")) for r in read_trials(run)]
    keys = [run_key(r.trial_config().to_dict()) for r in made]
    assert len(keys) == len(set(keys)), "a run was made twice"
    assert all(r.status == "finished" for r in made)
    planned = {run_key(config) for *_, config in planned_runs(entry)}
    compared = {run_key(r.trial_config().to_dict()) for run in (sweep / "compare/mopo_official" / STEM).glob("run-*")
                for r in read_trials(run)}
    assert planned == set(keys) | (planned & compared) and len(planned & compared) == 2
    for before in cut:  # continued from its checkpoint: epoch 1 reported once
        after = next(r for r in made if r.path == before.path)
        assert reported_epochs(after).count(1) == 1, reported_epochs(after)
    assert all(next(r for r in made if r.path == p).last["score"] == s for p, s in ended_before.items())
    assert all(r.replay.differing == 0 for r in made), [(r.name, r.replay) for r in made]  # same seed, same result
    assert all(h["cpu"] == cpu_kind() for r in made for h in r.history), "every report names the CPU that ran it"
    for record in made:  # every evaluation keeps each episode's return (learning curves, bandits)
        evaluations = [h for h in record.history if f"episode_returns_seed{record.seeds[0]}" in h]
        assert len(evaluations) == record.trial_config().epochs, record.name
    table = json.loads((runs_dir.parent / "confirmation.json").read_text())[0]
    assert [a["arm"] for a in table["arms"]] == ["baseline", "best1", "best2"]
    assert all(a[b]["n"] == 1 for a in table["arms"] for b in (SEARCH, CONFIRM))
    assert table["kendall_search_vs_confirm"]["n"] == 3 and table["winner_at_confirm"] in {"baseline", "best1", "best2"}
    # The late mean: each confirm-budget run's evaluations (the reports with episode returns) after 90% of
    # its epochs.
    arm_of = {run_key(config): (arm, budget) for arm, budget, _, config in planned_runs(entry)}
    late = {a["arm"]: a["late"] for a in table["arms"]}
    assert table["late_updates"] == 120
    for record in made:
        arm, budget = arm_of[run_key(record.trial_config().to_dict())]
        if budget == CONFIRM:
            tail = [h["normalized_score"] for h in record.history
                    if f"episode_returns_seed{record.seeds[0]}" in h and h["epoch"] > 27]
            assert late[arm]["n"] == 1 and late[arm]["evaluations"] == [len(tail)] and len(tail) >= 1, late[arm]
            assert late[arm]["mean"] == pytest.approx(sum(tail) / len(tail)), (arm, tail)
    best1_late = table["vs_baseline"]["best1"]["late"]
    assert best1_late["difference"] == pytest.approx(late["best1"]["mean"] - late["baseline"]["mean"])
    # regret@1 of the search budget's ranking, from the arms' own scores: best at the confirm budget minus
    # the confirm score of the arm that was best at the search budget
    means = {a["arm"]: (a[SEARCH]["mean"], a[CONFIRM]["mean"]) for a in table["arms"]}
    pick = max(means, key=lambda arm: means[arm][0])
    ranking = table["search_ranking"]
    assert ranking["n"] == 3 and ranking["regret"]["1"] == max(c for _, c in means.values()) - means[pick][1]
    report = (home / "out/tiny/report/report.md").read_text()
    assert "Fidelity transfer, hopper-random-2k" in report and "Confirmation at a larger budget" in report
    assert "Online budget, hopper-random-2k: the UCB bandit" in report  # best1 and best2 by their episodes
    assert list((home / "out/tiny/report/figures").glob("confirm-*.png"))
    status = _cli("status", "out/tiny", cwd=home)
    assert status.returncode == 0 and "confirm   done (" in status.stdout, status.stdout
    assert "; 6/6 confirm runs done, about 0 s left" in status.stdout, status.stdout

    # Moved: the whole folder (study file, data, study) elsewhere, the old place gone. Everything still
    # reads and resumes: the same tables, nothing run again.
    moved = tmp_path / "moved"
    shutil.move(str(home), moved)
    msweep = f"out/tiny/sweeps/{STEM}"
    code, out = run_until(moved / "study.yaml", None, timeout=300)
    assert code == 0 and "started" not in out and "done earlier" in out, out[-3000:]
    compare = _cli("compare", msweep, "--seeds", "1", "--no-run", cwd=moved)
    assert compare.returncode == 0, compare.stderr
    rows = json.loads((moved / msweep / "compare/mopo_official/comparison.json").read_text())["rows"]
    assert rows[0]["n_best"] == 1 and rows[0]["n_baseline"] == 1, rows
    again = _cli("confirm", msweep, "--top-k", "2", "--seeds", "1", "--set", "epochs=30", "--no-run", cwd=moved)
    assert again.returncode == 0, again.stderr
    assert "runs at" not in again.stdout, "nothing left to run"
    moved_table = json.loads((moved / msweep / "confirm/mopo_official/confirmation.json").read_text())[0]
    assert moved_table["arms"] == table["arms"]
    report = _cli("report", msweep, "--out", "rep", cwd=moved)
    assert report.returncode == 0 and "Fidelity transfer" in (moved / "rep/report.md").read_text(), report.stderr
    of_study = _cli("report", "out/tiny", "--out", "rep-study", cwd=moved)  # a study folder: its sweeps
    assert of_study.returncode == 0, of_study.stderr
    text = (moved / "rep-study/report.md").read_text()
    assert text.startswith("# mbrl-tune study: tiny") and "Fidelity transfer" in text, text[:500]

    # Same seed, same result, on demand, in the moved study: the first trial of each experiment folder (the
    # sweep's, the comparison's, each confirm run folder: the one killed and resumed) re-run here
    # to its first evaluation, through the trainable's own loop without Ray, every field equal; the pools are
    # found above the trials (their stored folder went with the move), and nothing is written.
    before = sorted((p, p.stat().st_mtime_ns) for p in (moved / "out").rglob("*") if p.is_file())
    folders = {r.parent for r in (moved / "out").rglob("*/params.json")}
    verified = _cli("verify", "out/tiny", "--dataset", "data/hopper-random-2k.hdf5", cwd=moved)
    assert verified.returncode == 0, (verified.stdout, verified.stderr[-2000:])
    lines = [line for line in verified.stdout.splitlines() if "every field equal" in line]
    assert len(lines) == len({f.parent for f in folders}) >= 3, verified.stdout  # sweep, compare, confirm
    assert f"reproduced: {len(lines)} of {len(lines)} trials" in verified.stdout
    assert sorted((p, p.stat().st_mtime_ns) for p in (moved / "out").rglob("*") if p.is_file()) == before
    # A stored report changed in its last digit: the check fails (exit 1) and names the field.
    trial = next(r for r in made if r.history[0].get("critic_loss") is not None)
    copy = moved / "out" / trial.path.relative_to(home / "out")
    rows = [json.loads(line) for line in (copy / "result.json").read_text().splitlines() if line.strip()]
    rows[0]["critic_loss"] = math.nextafter(rows[0]["critic_loss"], math.inf)
    (copy / "result.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
    changed = _cli("verify", str(copy), "--epochs", "1", "--dataset", "data/hopper-random-2k.hdf5", cwd=moved)
    assert changed.returncode == 1, (changed.stdout, changed.stderr[-2000:])
    assert "1 of 1 differ (epoch 1 critic_loss" in changed.stdout and "NOT reproduced" in changed.stdout
    assert f"stored on {cpu_kind()}, here {cpu_kind()})" in changed.stdout, changed.stdout


BAD = {
    "no sweep": (["nowhere"], "not a sweep folder"),
    "k beyond the distinct configurations": (["SWEEP", "--top-k", "9"], "distinct finished configurations; ask for"),
    "k zero": (["SWEEP", "--top-k", "0"], "a positive count or 'all'"),
    "invalid budget value": (["SWEEP", "--set", "epochs=0"], "epochs"),
    "budget not larger": (["SWEEP", "--set", "epochs=2"], "must be larger than the search's"),
    "a key that defines the arms' place": (["SWEEP", "--set", "seed=4"], "cannot be changed by confirm"),
    "unknown key": (["SWEEP", "--set", "epoks=30"], "epoks"),
}


@pytest.fixture(scope="module")
def finished_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny finished sweep of 3 trials (no comparison), made by the real CLI; its space is ``quick`` with
    the hand-tuned 7 models / 5 elites, so its first trial is the hand-tuned setting itself."""
    home = tmp_path_factory.mktemp("sweep")
    gen = _cli("datasets", "generate", "--env", "hopper", "--level", "random", "--size", "2000", "--out", "d.hdf5",
               cwd=home)
    assert gen.returncode == 0, gen.stderr
    quick = (Path(__file__).parents[2] / "search_spaces" / "quick.yaml").read_text()
    (home / "space.yaml").write_text(quick.replace("num_models: 5", "num_models: 7").replace(
        "num_elites: 3", "num_elites: 5").replace("name: quick", "name: quick-7-5"))
    done = _cli("sweep", "--space", "space.yaml", "--dataset", "d.hdf5", "--trials", "3", "--concurrency", "2",
                "--preset", "tiny", "--name", "s", "--storage", "sw", "--set", "dynamics.max_epochs=5", cwd=home)
    assert done.returncode == 0, done.stderr[-2000:]
    return home / "sw" / "s"


@pytest.mark.parametrize("case", list(BAD))
def test_bad_confirm_input_is_refused_in_one_line(case: str, finished_sweep: Path,
                                                  cli: Callable[..., subprocess.CompletedProcess]) -> None:
    args, message = BAD[case]
    args = [str(finished_sweep) if a == "SWEEP" else a for a in args]
    done = cli("confirm", *args)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert message in done.stderr and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert not (finished_sweep / "confirm").exists(), "nothing is written"


def test_the_baseline_shows_the_sweeps_own_score_of_the_hand_tuned_setting(finished_sweep: Path,
                                                                         tmp_path: Path) -> None:
    """The sweep's first trial is the hand-tuned setting: the confirmation's baseline arm names that trial and
    its sweep score (the table's sweep column), and its per-update time stands in for the cost estimate where
    no comparison measured one."""
    home = tmp_path / "copy"
    shutil.copytree(finished_sweep.parent.parent, home)
    sweep = home / "sw" / "s"
    done = _cli("confirm", str(sweep), "--top-k", "1", "--seeds", "1", "--set", "epochs=6", "--no-run", cwd=home)
    assert done.returncode == 0, done.stderr[-2000:]
    first = min(read_trials(sweep / "d"), key=lambda r: r.order)
    plan = json.loads((sweep / "confirm" / "mopo_official" / "plan.json").read_text())["datasets"][0]
    baseline = plan["arms"][0]
    assert baseline["name"] == "baseline" and baseline["sweep_trial"] == first.trial_id
    assert baseline["sweep_score"] == pytest.approx(first.last["score"])
    per_update = first.last["time_total_s"] / first.last["epoch"] / first.trial_config().steps_per_epoch
    assert plan["seconds_per_update"]["baseline"] == pytest.approx(per_update / len(first.seeds))
    assert f"| baseline | {first.last['score']:.2f} |" in done.stdout, done.stdout


def test_top_k_all_confirms_every_trial_on_the_sweeps_seed_and_draws_the_transfer(
        finished_sweep: Path, tmp_path: Path) -> None:
    """``--top-k all`` on a copy of a finished 3-trial sweep: every trial's configuration re-run on the sweep's
    seed at the larger budget (its search-budget score is the trial's own), no hand-tuned arm, the rank
    correlation over the three, and the report's curves and transfer scatter; the same command again runs
    nothing."""
    home = tmp_path / "moved"
    shutil.copytree(finished_sweep.parent.parent, home)
    sweep = home / "sw" / "s"
    done = _cli("confirm", str(sweep), "--top-k", "all", "--set", "epochs=6", cwd=home)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "3 runs at" in done.stdout and "and 0 at" in done.stdout, done.stdout
    folder = sweep / "confirm" / "all"
    table = json.loads((folder / "confirmation.json").read_text())[0]
    trials = sorted(r.name for r in read_trials(sweep / table["dataset"]) if r.status == "finished")
    assert len(trials) == 3 and sorted(a["arm"] for a in table["arms"]) == trials and "vs_baseline" not in table
    for arm in table["arms"]:
        assert arm[SEARCH]["n"] == arm[CONFIRM]["n"] == 1 and arm[SEARCH]["mean"] == pytest.approx(arm["sweep_score"])
    assert table["kendall_sweep_vs_confirm"]["n"] == 3 and table["search_ranking"]["n"] == 3
    runs = [r for run in sorted((folder / table["dataset"]).glob("run-*")) for r in read_trials(run)]
    assert len(runs) == 3 and all(r.status == "finished" and r.last["epoch"] == 6 for r in runs)
    again = _cli("confirm", str(sweep), "--top-k", "all", "--set", "epochs=6", cwd=home)
    # 6 planned: the 3 at the search budget are the sweep's trials themselves
    assert again.returncode == 0 and "all 6 runs cached" in again.stdout, again.stdout
    assert len([r for run in (folder / table["dataset"]).glob("run-*") for r in read_trials(run)]) == 3
    report = _cli("report", str(sweep), "--out", "rep", cwd=home)
    assert report.returncode == 0, report.stderr[-2000:]
    figures = home / "rep" / "figures"
    assert [p.name for p in figures.glob("transfer-*-all.png")] and list(figures.glob("confirm-*-all.png"))
    assert "the points rise from left to right" in (home / "rep" / "report.md").read_text()


def _not_started(entry: ConfirmDataset, todo: list[tuple[str, str, int, dict[str, Any]]]) -> ConfirmProgress:
    """The progress of a confirmation none of whose runs ``todo`` has started (as ``confirm_progress``
    reads it from an empty folder)."""
    return ConfirmProgress(ended=0, planned=len(todo), pending=todo, resumable=0, running=[],
                           runs_left=[run_seconds(entry, arm, budget) for arm, budget, _, _ in todo])


def test_cost_and_time_left_say_when_nothing_was_measured() -> None:
    """No per-update time measured (no trial reported one): the cost line says the time is unknown instead
    of printing nan; spans of time read in s, min or h."""
    entry = ConfirmDataset(dataset="d.hdf5", experiment="d", name="hopper-random", seeds=[1],
                           updates={SEARCH: 100, CONFIRM: 1000}, arms=[])
    todo = [("baseline", CONFIRM, 1, {}), ("best1", SEARCH, 1, {})]
    assert "1 runs at 1,000 updates and 1 at 100: time unknown at 2 at a time" in cost_line(
        entry, _not_started(entry, todo), 2)
    measured = entry.model_copy(update={"seconds_per_update": {"baseline": 0.05}})
    progress = _not_started(measured, todo)
    assert progress.seconds_left == 0.05 * 1000 + 0.05 * 100  # best1 unmeasured: the others' mean
    assert "about 55 s at 1 at a time" in cost_line(measured, progress, 1)
    assert [duration(s) for s in (45, 720, 12_240)] == ["45 s", "12 min", "3.4 h"]


def test_the_slowest_arm_starts_first_and_the_wall_time_waits_for_the_longest_run() -> None:
    """Within a budget and seed the slowest arm starts first (a long run started last would run alone at
    the end); the printed wall time is that of the runs started in order as slots free, never less than the
    longest run, where the summed time over the slots would say less."""
    arms = [ConfirmArm(name=n, setting={}, configs={SEARCH: {"arm": n}, CONFIRM: {"arm": n}})
            for n in ("baseline", "best1", "best2")]
    entry = ConfirmDataset(dataset="d.hdf5", experiment="d", name="hopper-random", seeds=[1, 2],
                           updates={SEARCH: 100, CONFIRM: 1000}, arms=arms,
                           seconds_per_update={"baseline": 0.01, "best1": 0.05, "best2": 0.03})
    order = [(arm, budget, seed) for arm, budget, seed, _ in planned_runs(entry)]
    assert order == [("best1", SEARCH, 1), ("best1", SEARCH, 2), ("best2", SEARCH, 1), ("best2", SEARCH, 2),
                     ("baseline", SEARCH, 1), ("baseline", SEARCH, 2),
                     ("best1", CONFIRM, 1), ("best2", CONFIRM, 1), ("baseline", CONFIRM, 1),
                     ("best1", CONFIRM, 2), ("best2", CONFIRM, 2), ("baseline", CONFIRM, 2)]
    todo = [("best1", CONFIRM, 1, {}), *(("baseline", CONFIRM, s, {}) for s in (1, 2, 3))]
    fresh = _not_started(entry, todo)
    assert fresh.seconds_left == pytest.approx(80.0)  # 50 + 3 x 10 run time
    assert fresh.wall_seconds(2) == pytest.approx(50.0)  # not 80 / 2: best1 alone takes 50
    assert fresh.wall_seconds(1) == pytest.approx(80.0)
    assert "about 50 s at 2 at a time" in cost_line(entry, fresh, 2)
    # Resumed: the run in progress (best1, checkpointed at 60% of its epochs) keeps its slot with what it has
    # left; the others start as slots free.
    resumed = ConfirmProgress(ended=8, planned=12, pending=todo, runs_left=[20.0, 10.0, 10.0, 10.0], resumable=1,
                              running=["best1 seed 1 at 1,000 updates epoch 6/10"])
    assert resumed.seconds_left == pytest.approx(50.0)
    assert resumed.wall_seconds(2) == pytest.approx(30.0) and resumed.wall_seconds(4) == pytest.approx(20.0)
    assert "4 runs at 1,000 updates and 0 at 100, 1 resumed from a checkpoint: about 30 s at 2 at a time" in cost_line(
        entry, resumed, 2)
    assert math.isnan(wall_seconds([10.0, math.nan], 2)), "an unknown run time is not a shorter wall time"
    unmeasured = entry.model_copy(update={"seconds_per_update": {}})
    assert [arm for arm, *_ in planned_runs(unmeasured)][:3] == ["baseline", "baseline", "best1"], "plan order kept"
