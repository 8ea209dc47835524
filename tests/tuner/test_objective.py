"""Sweeps that optimise an offline estimate (``--objective fqe|model``, issue 27): real trials in a real Ray
run report both their simulator score and the estimates; the searcher, the best trial and the export go
by the objective; ``mbrl-tune estimate`` recomputes the same values from the trials' checkpoints."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import yaml

from trials.config import ConfigError, TrialConfig
from trials.data.dataset import load_dataset
from trials.measure.offline import floor_value
from trials.run.build import build_trainer
from trials.run.lockstep import offline_scores
from trials.run.mopo import DIVERGED
from trials.run.trainable import CHECKPOINT_FILE
from tuner.run.estimate import estimate_experiment, sweep_estimate_config
from tuner.store.presets import load_preset
from tuner.store.records import read_trials
from tuner.store.spec import SweepSpec
from tuner.store.status import best_trials

BIN = Path(sys.executable).parent
CLI = [str(BIN / "mbrl-tune")]
ENV = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "RAY_AUTH_MODE": "token"}
FQE_STEPS = 200


def sweep_args(dataset: Path, storage: Path, name: str, *extra: str) -> list[str]:
    return [*CLI, "sweep", "--space", "quick", "--dataset", str(dataset), "--trials", "3", "--storage", str(storage),
            "--name", name, "--preset", "tiny", "--init-trials", "3", *extra]


@pytest.fixture(scope="module")
def fqe_sweep(hopper_random_file: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A real 3-trial sweep that optimises FQE and reports the model estimate too."""
    storage = tmp_path_factory.mktemp("sweeps")
    done = subprocess.run(sweep_args(hopper_random_file, storage, "ope", "--objective", "fqe", "--concurrency", "2",
                                     "--set", f"estimate.fqe_steps={FQE_STEPS}", "--set", "estimate.kinds=[model]"),
                          capture_output=True, text=True, timeout=900, env=ENV)
    assert done.returncode == 0, done.stderr[-3000:]
    return storage / "ope", done.stdout


def test_an_fqe_sweep_records_both_scores_and_ranks_by_fqe(fqe_sweep: tuple[Path, str],
                                                          hopper_random_file: Path) -> None:
    sweep, stdout = fqe_sweep
    spec = SweepSpec.load(sweep)
    assert spec.objective == "fqe" and spec.metric == "score_fqe"
    assert spec.base["estimate"]["kinds"] == ["fqe", "model"]  # the objective's estimate added to the asked one
    records = [r for r in read_trials(sweep / hopper_random_file.stem) if r.status == "finished"]
    assert len(records) == 3
    for r in records:  # the simulator score and both estimates, at the last report only
        assert all(isinstance(r.last[k], float) and math.isfinite(r.last[k])
                   for k in ("score", "score_fqe", "score_model", "score_fqe_seed0", "fqe_seconds"))
        assert r.last["score_fqe"] == r.last["score_fqe_seed0"]
        assert all("score_fqe" not in h for h in r.history[:-1])
    # The judge pool (seed 1) was trained in the pool phase, beside the trials' own (seed 0).
    assert sorted(p.name.split("-")[2] for p in (sweep / "pools").glob("pool-*.pt")) == ["s0", "s1"]
    assert "score_fqe" in stdout and "best so far score_fqe" in stdout  # the lines name the objective
    status = subprocess.run([*CLI, "status", str(sweep)], capture_output=True, text=True, env=ENV)
    assert status.returncode == 0 and "objective fqe (score_fqe)" in status.stdout
    best = best_trials(records, 1, "score_fqe")[0]
    assert best.last["score_fqe"] == max(r.last["score_fqe"] for r in records)
    assert f"best: by score_fqe {best.last['score_fqe']:.3g}, {best.name}" in status.stdout
    out = sweep.parent / "best.yaml"
    exported = subprocess.run([*CLI, "export", str(sweep), "--out", str(out)], capture_output=True, text=True, env=ENV)
    assert exported.returncode == 0, exported.stderr
    doc = yaml.safe_load(out.read_text())
    assert doc["sweep"]["trial"] == best.trial_id and doc["sweep"]["objective"] == "fqe"
    assert doc["sweep"]["score_fqe"] == best.last["score_fqe"]


def test_estimate_recomputes_what_the_trials_reported(fqe_sweep: tuple[Path, str], hopper_random_file: Path,
                                                      cli: Callable[..., subprocess.CompletedProcess]) -> None:
    """One rule: the estimate command, from each trial's last checkpoint, gives the values the trial reported
    (the same estimator seeds and judge pool; only the thread count differs, so float tolerance)."""
    sweep, _ = fqe_sweep
    done = cli("estimate", str(sweep), "--fqe-steps", str(FQE_STEPS))
    assert done.returncode == 0, done.stderr
    rows = json.loads((sweep / "estimates" / f"{hopper_random_file.stem}.json").read_text())["rows"]
    reported = {r.name: r.last for r in read_trials(sweep / hopper_random_file.stem) if r.status == "finished"}
    assert len(rows) == 3
    for row in rows:
        assert row["fqe"] == pytest.approx(reported[row["trial"]]["score_fqe"], rel=1e-3, abs=1e-3)
        assert row["model"] == pytest.approx(reported[row["trial"]]["score_model"], rel=1e-3, abs=1e-3)
    # The report's offline section: each estimator's agreement with the simulator score, and its scatter.
    out = sweep.parent / "report"
    made = subprocess.run([*CLI, "report", str(sweep), "--out", str(out)], capture_output=True, text=True, env=ENV)
    assert made.returncode == 0, made.stderr
    text = (out / "report.md").read_text()
    assert "Choosing offline" in text and "fqe (objective)" in text and "| model |" in text.replace("  ", " ")
    assert (out / "figures" / f"estimates-ope-{hopper_random_file.stem}.png").is_file()
    # Beside it, the online budget: the bandit over the trials' recorded episodes, each estimator's pick marked.
    assert "Online or offline" in text and "fqe's top trial scores" in text
    assert (out / "figures" / f"online-vs-offline-ope-{hopper_random_file.stem}.png").is_file()


def test_estimate_leaves_a_diverged_seed_out_as_a_trial_does(fqe_sweep: tuple[Path, str], hopper_random_file: Path,
                                                            tmp_path: Path) -> None:
    """The trial's rule in ``mbrl-tune estimate`` too: a seed whose last checkpoint says it diverged is not
    estimated (its weights would give NaN), and a trial with no seed left gets the floor value."""
    sweep = tmp_path / "moved"
    shutil.copytree(fqe_sweep[0], sweep)
    records = sorted((r for r in read_trials(sweep / hopper_random_file.stem) if r.status == "finished"),
                     key=lambda r: r.name)
    checkpoint = sorted(records[0].path.glob("checkpoint_*"))[-1] / CHECKPOINT_FILE
    states = torch.load(checkpoint, map_location="cpu", weights_only=False)
    states[0]["status"] = DIVERGED
    torch.save(states, checkpoint)
    spec = SweepSpec.load(sweep)
    result = estimate_experiment(spec, spec.datasets[0], sweep_estimate_config(spec, FQE_STEPS))
    rows = {r["trial"]: r for r in result["rows"]}
    floor = floor_value(sweep_estimate_config(spec), load_dataset(hopper_random_file))
    diverged = rows[records[0].name]
    assert diverged["seeds"] == [] and diverged["diverged_seeds"] == [0]
    assert diverged["fqe"] == diverged["model"] == floor and diverged["fqe_seconds"] == 0
    for record in records[1:]:
        assert rows[record.name]["diverged_seeds"] == []
        assert rows[record.name]["fqe"] == pytest.approx(record.last["score_fqe"], rel=1e-3, abs=1e-3)


def test_objective_bad_input_is_one_line(hopper_random_file: Path, tmp_path: Path) -> None:
    for extra, message in (
        (["--objective", "fqe", "--early-stop", "asha"], "--early-stop asha with --objective fqe"),
        (["--objective", "model", "--set", "estimate.judge_seed=0"], "estimate.judge_seed=0"),
        (["--objective", "oracle"], "invalid choice: 'oracle'"),
        (["--set", "estimate.kinds=[critic]"], "field 'estimate.kinds.0'"),
    ):
        done = subprocess.run(sweep_args(hopper_random_file, tmp_path, "bad", *extra), capture_output=True,
                              text=True, env=ENV, timeout=120)
        assert done.returncode == 2, (extra, done.stderr[-2000:])
        assert message in done.stderr and done.stderr.count("\n") == 1, (extra, done.stderr)
    assert not (tmp_path / "bad").exists()


def test_a_trial_refuses_its_own_pool_as_judge(hopper_random_file: Path) -> None:
    with pytest.raises(ConfigError, match="judge_seed=2 is the trial's own seed"):
        TrialConfig.from_dict({"dataset": str(hopper_random_file), "seed": 2,
                               "estimate": {"kinds": ["model"], "judge_seed": 2}})


def test_a_diverged_seed_is_left_out_of_the_estimate(hopper_random_file: Path, tmp_path: Path) -> None:
    """Divergence leaves weights that are not finite: such a seed is not estimated (its FQE would be NaN and
    spoil the trial's mean); every seed diverged gives the lowest value the estimate can take."""
    data = load_dataset(hopper_random_file)
    cfg = TrialConfig.from_dict({**load_preset("tiny"), "dataset": str(hopper_random_file), "pool_dir": str(tmp_path),
                                 "estimate": {"kinds": ["fqe"], "fqe_steps": 20}})
    trainers = {s: build_trainer(cfg.with_overrides({"seed": s}), data) for s in (0, 1)}
    both = offline_scores(trainers, data)
    trainers[1].status = DIVERGED
    one = offline_scores(trainers, data)
    assert "score_fqe_seed1" not in one and one["score_fqe"] == one["score_fqe_seed0"] == both["score_fqe_seed0"]
    trainers[0].status = DIVERGED
    assert offline_scores(trainers, data) == {"score_fqe": min(float(data.rewards.min()), 0.0) / (1 - 0.99)}
