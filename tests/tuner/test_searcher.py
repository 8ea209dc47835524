"""Searchers on real Ray Tune and real Ax: proposals, failure rules, save/restore, and the factory.

A cheap analytic trainable stands in for offline MBRL: its score peaks at lam = 10**0.3 ~ 2 and
horizon 4, with a bonus for ensemble_std. Two magic lambdas make a trial raise or diverge.

This file is also a script (see the bottom): the kill-and-resume test runs a Tune driver in a
subprocess and kills it with SIGKILL, as a crash would.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import ray
from ray import tune

from search_spaces import SearchSpaceError, load_builtin, space_from_dict
from tuner.search.ax import AxSearcher
from tuner.search.registry import SEARCHERS, RandomSearcher, make_searcher

ERROR_LAM = 0.0123  # the trainable raises for this lambda
DIVERGED_LAM = 0.0456  # the trainable reports a diverged run for this lambda
DIVERGED_SCORE = -5.0

SPACE = space_from_dict(
    {
        "name": "toy",
        "parameters": {
            "penalty": {
                "choice": ["max_aleatoric", "ensemble_std"],
                "depends": {
                    "max_aleatoric": {"lam": {"float": [0.01, 100.0], "log": True}},
                    "ensemble_std": {"lam": {"float": [0.01, 100.0], "log": True}},
                },
            },
            "rollout.horizon": {"int": [1, 10]},
        },
        "fixed": {"num_models": 7, "num_elites": 5},
    },
    source="toy.yaml",
)
BASELINE = {"penalty": "max_aleatoric", "lam": 5.0, "rollout.horizon": 5, "num_models": 7, "num_elites": 5}


def toy_score(config: dict[str, Any]) -> float:
    bonus = 0.3 if config["penalty"] == "ensemble_std" else 0.0
    return -((math.log10(config["lam"]) - 0.3) ** 2) - 0.01 * (config["rollout.horizon"] - 4) ** 2 + bonus


def trainable(config: dict[str, Any]) -> None:
    if config["lam"] == ERROR_LAM:
        raise RuntimeError("this configuration always crashes")
    if config["lam"] == DIVERGED_LAM:
        tune.report({"score": DIVERGED_SCORE, "status": "diverged"})
        return
    time.sleep(float(config.get("sleep_s", 0.0)))
    tune.report({"score": toy_score(config), "status": "ok"})


def run_sweep(searcher: Any, storage: Path, name: str, num_samples: int) -> tune.ResultGrid:
    tuner = tune.Tuner(
        trainable,
        param_space={"dataset": "toy"},  # a constant: Tune merges it into every suggestion
        tune_config=tune.TuneConfig(search_alg=searcher, num_samples=num_samples, reuse_actors=True),
        run_config=tune.RunConfig(storage_path=str(storage), name=name, verbose=0),
    )
    return tuner.fit()


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    # Workers cannot import this test module by name, so ship its functions (the trainable) by value.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def statuses(searcher: AxSearcher) -> dict[int, str]:
    table = searcher.summary()
    return dict(zip(table["trial_index"], table["trial_status"], strict=True))


# ---------------------------------------------------------------- Ax on a real Tune sweep


@pytest.fixture(scope="module")
def ax_sweep(local_ray: None, tmp_path_factory: pytest.TempPathFactory) -> tuple[AxSearcher, tune.ResultGrid]:
    warm_start = [
        (BASELINE, None),  # the hand-tuned baseline: evaluated first
        ({**BASELINE, "lam": DIVERGED_LAM}, None),
        ({**BASELINE, "lam": ERROR_LAM}, None),
        ({**BASELINE, "penalty": "ensemble_std", "lam": 1.0}, 0.2),  # an earlier result
    ]
    searcher = AxSearcher(
        SPACE, "score", "max", num_init_trials=6, seed=0, warm_start=warm_start, max_concurrent=2
    )
    results = run_sweep(searcher, tmp_path_factory.mktemp("ax"), "ax", num_samples=12)
    return searcher, results


def test_ax_sweep_runs_every_trial(ax_sweep: tuple[AxSearcher, tune.ResultGrid]) -> None:
    searcher, results = ax_sweep
    assert len(results) == 12
    assert results.num_errors == 1
    assert sum("score" in r.metrics for r in results) == 11
    for result in results:  # every suggestion is a point of the space, fixed values included
        config = dict(result.config)
        assert config.pop("dataset") == "toy"  # the param_space constant, merged in by Tune
        assert set(config) == set(SPACE.keys)
        SPACE.encode(config)
    # Tune's trial ids map one to one onto Ax trials; the scored warm-start point has no Tune trial.
    assert len(searcher.trial_indices) == 12
    assert sorted(searcher.trial_indices.values()) == [0, 1, 2] + list(range(4, 13))


def test_ax_sweep_evaluates_the_baseline_first(ax_sweep: tuple[AxSearcher, tune.ResultGrid]) -> None:
    searcher, results = ax_sweep
    first_trial_id, first_index = next(iter(searcher.trial_indices.items()))
    assert first_index == 0
    (first,) = [r for r in results if r.metrics.get("trial_id") == first_trial_id]
    assert {k: first.config[k] for k in BASELINE} == BASELINE
    assert first.metrics["score"] == pytest.approx(toy_score(BASELINE))


def test_ax_sweep_moves_from_sobol_to_botorch(ax_sweep: tuple[AxSearcher, tune.ResultGrid]) -> None:
    searcher, _ = ax_sweep
    nodes = searcher.generation_nodes
    assert [nodes[i] for i in range(4)] == ["Manual"] * 4  # the warm-start points
    sequence = [nodes[i] for i in sorted(nodes)]
    # 6 initial trials = 4 warm-start + 2 Sobol, plus one Sobol more if the crashing baseline has
    # already failed by then (Ax does not count failed trials toward its initial design).
    num_sobol = sequence.count("Sobol")
    assert num_sobol in (2, 3)
    assert sequence == ["Manual"] * 4 + ["Sobol"] * num_sobol + ["MBM"] * (9 - num_sobol)
    # BoTorch proposals cost more than Sobol's, and each call was timed.
    assert len(searcher.proposal_times) >= 5
    assert max(searcher.proposal_times) < 60


def test_ax_sweep_applies_the_failure_rules(ax_sweep: tuple[AxSearcher, tune.ResultGrid]) -> None:
    searcher, _ = ax_sweep
    table = searcher.summary().set_index("trial_index")
    assert table.loc[1, "trial_status"] == "COMPLETED"  # diverged: completed with its finite score
    assert table.loc[1, "score"] == DIVERGED_SCORE
    assert table.loc[2, "trial_status"] == "FAILED"  # raised in the trainable
    assert table.loc[3, "trial_status"] == "COMPLETED" and table.loc[3, "score"] == 0.2
    assert searcher.num_completed == 12  # 13 Ax trials, one failed
    # Batches never exceed Tune's num_samples, so no proposal is left running in Ax at the end.
    assert "RUNNING" not in set(table["trial_status"])


def test_restoring_the_saved_state_continues_the_same_optimisation(
    ax_sweep: tuple[AxSearcher, tune.ResultGrid],
) -> None:
    searcher, results = ax_sweep
    fresh = AxSearcher(SPACE, "score", "max", num_init_trials=6, seed=0, max_concurrent=2)
    fresh.restore_from_dir(results.experiment_path)  # the file Tune saved during the sweep
    assert fresh.num_completed == searcher.num_completed == 12
    assert fresh.generation_nodes == searcher.generation_nodes
    assert fresh.proposal_times == searcher.proposal_times
    config = fresh.suggest("after-restore")
    assert isinstance(config, dict) and SPACE.decode(SPACE.encode(config)) == config
    new_index = fresh.trial_indices["after-restore"]
    assert new_index == 13 and fresh.generation_nodes[new_index] == "MBM"  # not a restarted Sobol design


# ---------------------------------------------------------------- the searcher without Tune


def test_failure_rules_one_by_one() -> None:
    searcher = AxSearcher(SPACE, "score", "max", num_init_trials=8, seed=1, max_concurrent=8)
    configs = {f"t{i}": searcher.suggest(f"t{i}") for i in range(6)}
    assert all(isinstance(c, dict) for c in configs.values())
    assert len(searcher.proposal_times) == 1  # one Ax call proposed a batch of 8; 6 handed out
    searcher.on_trial_complete("t0", {"score": 0.5, "status": "ok"})
    searcher.on_trial_complete("t1", {"score": -3.0, "status": "diverged"})
    searcher.on_trial_complete("t2", None, error=True)
    searcher.on_trial_complete("t3", {"score": float("nan"), "status": "ok"})
    searcher.on_trial_complete("t4", {"loss": 1.0})
    searcher.on_trial_complete("t5", None)  # stopped before its first report
    index = searcher.trial_indices
    expected = ["COMPLETED", "COMPLETED", "FAILED", "FAILED", "FAILED", "ABANDONED"]
    assert [statuses(searcher)[index[f"t{i}"]] for i in range(6)] == expected
    # A late result for the abandoned trial (Tune re-ran it) reaches Ax as a new trial.
    searcher.on_trial_complete("t5", {"score": 0.1, "status": "ok"})
    table = searcher.summary().set_index("trial_index")
    late = searcher.trial_indices["t5"]
    assert late != index["t5"] and table.loc[late, "trial_status"] == "COMPLETED"
    assert table.loc[late, "score"] == 0.1
    # An id the searcher never proposed is ignored.
    searcher.on_trial_complete("stranger", {"score": 1.0})
    assert "stranger" not in searcher.trial_indices


def test_concurrency_limit_and_queue() -> None:
    searcher = AxSearcher(SPACE, "score", "min", num_init_trials=5, seed=0, warm_start=[(BASELINE, None)])
    assert searcher.suggest("a") == BASELINE  # max_concurrent=1: no Ax call yet
    assert searcher.suggest("b") is None
    assert searcher.proposal_times == []
    searcher.on_trial_complete("a", {"score": 1.0})
    assert isinstance(searcher.suggest("b"), dict)
    assert searcher.set_max_concurrency(3)
    assert isinstance(searcher.suggest("c"), dict) and isinstance(searcher.suggest("d"), dict)
    assert searcher.suggest("e") is None


def test_save_mid_flight_then_restore_abandons_running_trials_and_keeps_the_queue(tmp_path: Path) -> None:
    searcher = AxSearcher(
        SPACE, "score", "max", num_init_trials=6, seed=0, warm_start=[(BASELINE, None)], max_concurrent=3
    )
    running = {tid: searcher.suggest(tid) for tid in ("r0", "r1")}
    searcher.on_trial_complete("r0", {"score": toy_score(running["r0"])})
    running["r2"] = searcher.suggest("r2")  # from the queue: r1 and r2 are running
    searcher.set_max_concurrency(4)
    running["r3"] = searcher.suggest("r3")  # a batch of 2: one handed out, one queued
    searcher.save(str(tmp_path / "state.json"))
    assert not list(tmp_path.glob(".*tmp"))  # written atomically, no temporary left behind
    saved = json.loads((tmp_path / "state.json").read_text())
    assert set(saved["live"]) == {"r1", "r2", "r3"} and len(saved["queue"]) == 1

    fresh = AxSearcher(SPACE, "score", "max", num_init_trials=6, seed=0, max_concurrent=4)
    fresh.restore(str(tmp_path / "state.json"))
    ax_status = statuses(fresh)
    assert [ax_status[fresh.trial_indices[t]] for t in ("r0", "r1", "r2", "r3")] == [
        "COMPLETED",
        "ABANDONED",
        "ABANDONED",
        "ABANDONED",
    ]
    queued_index = saved["queue"][0][0]
    assert fresh.suggest("n0") == SPACE.decode(saved["queue"][0][1])  # the queued proposal first
    assert fresh.trial_indices["n0"] == queued_index
    # Tune re-runs r1 under its id; ResumeConfig RESTART re-runs r2 under a new id with its config.
    fresh.on_trial_complete("r1", {"score": toy_score(running["r1"])})
    restarted = {"score": toy_score(running["r2"]), **{f"config/{k}": v for k, v in running["r2"].items()}}
    fresh.on_trial_complete("r2-restarted", restarted)
    table = fresh.summary().set_index("trial_index")
    for trial_id in ("r1", "r2-restarted"):
        assert table.loc[fresh.trial_indices[trial_id], "trial_status"] == "COMPLETED"
    assert fresh.num_completed == 3


def test_pickling_keeps_the_experiment() -> None:
    searcher = AxSearcher(SPACE, "score", "max", num_init_trials=4, seed=0, max_concurrent=2)
    config = searcher.suggest("a")
    assert isinstance(config, dict)
    searcher.on_trial_complete("a", {"score": 1.0})
    copy = pickle.loads(pickle.dumps(searcher))
    assert copy.num_completed == 1 and copy.trial_indices == {"a": 0}
    assert isinstance(copy.suggest("b"), dict)


def test_states_pickled_before_the_ax_searcher_moved_still_load() -> None:
    """Sweeps saved before the searchers moved to ``tuner/search/`` name the class ``tuner.searcher.AxSearcher``
    (the oldest) or ``tuner.ax_searcher.AxSearcher`` in their Tune state (``tuner.pkl``): both names must
    still unpickle to the searcher, so they resume (``tuner.aliases``)."""
    searcher = AxSearcher(SPACE, "score", "max", num_init_trials=4, seed=0)
    searcher.suggest("a")
    searcher.on_trial_complete("a", {"score": 1.0})
    blob = pickle.dumps(searcher, protocol=2)  # protocol 2 names classes in plain text, without frames
    moved = b"ctuner.search.ax\nAxSearcher\n"
    assert moved in blob
    for module in (b"tuner.searcher", b"tuner.ax_searcher"):
        copy = pickle.loads(blob.replace(moved, b"c" + module + b"\nAxSearcher\n"))
        assert type(copy) is AxSearcher and copy.trial_indices == {"a": 0} and copy.num_completed == 1


def test_restore_refuses_another_sweeps_state(tmp_path: Path) -> None:
    searcher = AxSearcher(SPACE, "score", "max", num_init_trials=4, seed=0)
    searcher.suggest("a")
    searcher.save(str(tmp_path / "state.json"))
    with pytest.raises(ValueError, match=r"saved searcher optimised 'score' \(max\)"):
        AxSearcher(SPACE, "score", "min").restore(str(tmp_path / "state.json"))


def test_ax_proposals_respect_the_paper_space_constraint() -> None:
    space = load_builtin("paper")
    searcher = AxSearcher(space, "score", "max", num_init_trials=12, seed=3, max_concurrent=12)
    configs = [searcher.suggest(f"t{i}") for i in range(12)]
    assert all(isinstance(c, dict) and c["num_elites"] <= c["num_models"] for c in configs)
    assert all(c["lam"] is not None and space.encode(c) for c in configs)


def test_warm_start_points_are_checked_before_the_sweep() -> None:
    with pytest.raises(SearchSpaceError, match=r"parameter 'lam': 500\.0 is not allowed"):
        AxSearcher(SPACE, "score", "max", warm_start=[({**BASELINE, "lam": 500.0}, 1.0)])
    with pytest.raises(ValueError, match="mode must be 'max' or 'min'"):
        AxSearcher(SPACE, "score", "maximise")  # type: ignore[arg-type]


# ---------------------------------------------------------------- factory, random and Optuna


def test_make_searcher_knows_its_kinds() -> None:
    assert set(SEARCHERS) == {"ax", "random", "optuna"}
    with pytest.raises(ValueError, match=r"unknown searcher kind 'grid' \(known: ax, random, optuna\)"):
        make_searcher("grid", SPACE, "score", "max")


@pytest.mark.parametrize("kind", ["random", "optuna"])
def test_random_and_optuna_sweeps_start_from_the_baseline(local_ray: None, tmp_path: Path, kind: str) -> None:
    earlier = ({**BASELINE, "penalty": "ensemble_std", "lam": 2.0}, 0.25)
    searcher = make_searcher(
        kind,
        SPACE,
        "score",
        "max",
        seed=0,
        num_init_trials=3,
        warm_start=[(BASELINE, None), earlier],
        max_concurrent=2,
    )
    results = run_sweep(searcher, tmp_path, kind, num_samples=6)
    assert len(results) == 6 and results.num_errors == 0
    configs = [{k: r.config[k] for k in r.config if k != "dataset"} for r in results]
    for config in configs:
        assert set(config) == set(SPACE.keys)  # only space keys: no optimizer-side names leak out
        SPACE.encode(config)
    assert BASELINE in configs
    assert all("score" in r.metrics for r in results)


def test_random_searcher_restore_continues_its_sequence(tmp_path: Path) -> None:
    searcher = RandomSearcher(SPACE, "score", "max", seed=5, warm_start=[(BASELINE, None)], max_concurrent=10)
    assert searcher.suggest("a") == BASELINE
    searcher.suggest("b")
    searcher.save(str(tmp_path / "random.json"))
    expected = [searcher.suggest(t) for t in ("c", "d")]
    fresh = RandomSearcher(SPACE, "score", "max", seed=999, max_concurrent=10)
    fresh.restore(str(tmp_path / "random.json"))
    assert [fresh.suggest(t) for t in ("c", "d")] == expected
    assert fresh.num_suggested == 4


# ---------------------------------------------------------------- kill the driver, resume with Tuner.restore

NUM_SAMPLES_KILLED = 12


def drive(mode: str, storage: str) -> None:
    """Run (``start``) or resume (``resume``) a sweep whose trials take a second each."""
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    searcher = AxSearcher(
        SPACE, "score", "max", num_init_trials=5, seed=0, warm_start=[(BASELINE, None)], max_concurrent=2
    )
    if mode == "start":
        tuner = tune.Tuner(
            trainable,
            param_space={"sleep_s": 1.0},
            tune_config=tune.TuneConfig(
                search_alg=searcher, num_samples=NUM_SAMPLES_KILLED, reuse_actors=True
            ),
            run_config=tune.RunConfig(storage_path=storage, name="killed", verbose=0),
        )
    else:
        tuner = tune.Tuner.restore(os.path.join(storage, "killed"), trainable=trainable, resume_errored=True)
    tuner.fit()
    ray.shutdown()


PROPOSALS_SCRIPT = """
import json, random, sys
random.seed(int(sys.argv[1]))  # what the driver process drew before: it must not matter
for _ in range(int(sys.argv[1])):
    random.random()
from search_spaces import load_builtin
from tuner.search.ax import AxSearcher
searcher = AxSearcher(load_builtin("paper"), "score", "max", seed=5, num_init_trials=4, max_concurrent=2)
configs = []
for i in range(6):
    config = searcher.suggest(f"t{i}")
    configs.append(config)
    if i in (1, 3):  # the Sobol pairs complete, so the last two are BoTorch's
        for j in (i - 1, i):
            c = configs[j]
            searcher.on_trial_complete(f"t{j}", {"score": c["rollout.horizon"] - abs(c["num_models"] - 6)})
print(json.dumps(configs, sort_keys=True))
"""


def test_rounding_draws_go_to_the_same_parameters_whatever_the_set_order() -> None:
    """The patched Ax rounding (``tuner.search.ax._round_in_name_order``) takes names in sorted order: the same
    seeded draws round the same parameters the same way whichever order the set of names iterates in."""
    from ax.adapter.transforms import int_to_float  # noqa: PLC0415

    from tuner.search.ax import _ax_randomized_round_parameters as unpatched  # noqa: PLC0415

    values = {"num_models": 6.5, "rollout.horizon": 3.5, "num_elites": 4.5, "lam": 0.3}
    orders = (["num_models", "rollout.horizon", "num_elites"], ["num_elites", "num_models", "rollout.horizon"])

    def rounded(function: Any) -> list[dict[str, Any]]:
        out = []
        for names in orders:
            random.seed(0)
            out.append(function(values, names))
        return out

    before = rounded(unpatched)
    assert before[0] != before[1]  # Ax's own: the same draws, other parameters
    after = rounded(int_to_float.randomized_round_parameters)
    assert after[0] == after[1] and after[0]["lam"] == 0.3
    assert all(after[0][k] in (int(v), int(v) + 1) for k, v in values.items() if k != "lam")


@pytest.mark.slow
def test_the_same_seed_proposes_the_same_configurations_in_any_process() -> None:
    """Ax rounds integers at random when a constraint involves them (the paper space's elites <= members),
    handing its seeded draws out in the order of a ``set`` of names (per-process string hashing): the same
    seed gave other horizons in another process. Two drivers with different hash seeds and different global
    draws before the searcher must get the same Sobol design and BoTorch proposals."""
    repo = Path(__file__).resolve().parents[2]
    outputs = []
    for hash_seed, draws in (("0", "1"), ("5", "7")):  # these hash seeds order the three integer names apart
        env = {**os.environ, "PYTHONPATH": str(repo), "PYTHONHASHSEED": hash_seed}
        done = subprocess.run([sys.executable, "-c", PROPOSALS_SCRIPT, draws], cwd=repo, env=env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        outputs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    assert len(outputs[0]) == 6 and all(isinstance(c, dict) for c in outputs[0])
    assert outputs[0] == outputs[1]


def test_proposing_leaves_the_process_global_generators_as_they_were() -> None:
    """Ax seeds its draws inside each proposal and puts the process's generators back: a guard on what
    ``_round_in_name_order``'s docstring relies on (the draws are seeded; only their order was not)."""
    random.seed(3)
    np.random.seed(3)
    before = random.getstate(), np.random.get_state()
    searcher = AxSearcher(load_builtin("paper"), "score", "max", seed=0, num_init_trials=4, max_concurrent=2)
    assert isinstance(searcher.suggest("t0"), dict)
    after = np.random.get_state()
    assert random.getstate() == before[0]
    assert np.array_equal(after[1], before[1][1]) and after[2:] == before[1][2:]


@pytest.mark.slow
def test_killed_sweep_resumes_the_same_optimisation(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(repo)}

    def run(mode: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, __file__, mode, str(tmp_path)],
            cwd=repo,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group, so SIGKILL takes its Ray processes too
        )

    driver = run("start")
    try:
        deadline = time.monotonic() + 120
        while sum(1 for p in tmp_path.glob("killed/*/result.json") if p.stat().st_size) < 7:
            assert time.monotonic() < deadline and driver.poll() is None, "the sweep did not get going"
            time.sleep(0.2)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    resumed = run("resume")
    assert resumed.wait(timeout=300) == 0

    searcher = AxSearcher(SPACE, "score", "max", num_init_trials=5, seed=0, max_concurrent=2)
    searcher.restore_from_dir(str(tmp_path / "killed"))
    results = tune.ExperimentAnalysis(str(tmp_path / "killed")).dataframe()
    assert len(results) == NUM_SAMPLES_KILLED and results["score"].notna().all()
    nodes = searcher.generation_nodes
    assert list(nodes.values()).count("Sobol") == 4  # the initial design ran once, never restarted
    table = searcher.summary()
    completed = table[table["trial_status"] == "COMPLETED"]
    # Every score Tune recorded reached Ax, including trials re-run after the kill.
    by_trial = dict(zip(results["trial_id"], results["score"], strict=True))
    scored = {searcher.trial_indices[t]: s for t, s in by_trial.items()}
    assert set(scored) <= set(completed["trial_index"])
    got = dict(zip(completed["trial_index"], completed["score"], strict=True))
    assert all(np.isclose(got[i], s) for i, s in scored.items())


if __name__ == "__main__":
    drive(sys.argv[1], sys.argv[2])


def test_the_store_knows_every_searcher_by_name() -> None:
    """A study file's ``searcher`` is checked against ``SEARCHER_KINDS`` without importing Ray; the
    registry must build exactly those."""
    from tuner.search.registry import SEARCHERS  # noqa: PLC0415
    from tuner.store.spec import SEARCHER_KINDS  # noqa: PLC0415

    assert tuple(SEARCHERS) == SEARCHER_KINDS
