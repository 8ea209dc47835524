"""Sweeps as users run them: the real CLI, real Ray clusters, real Ax, small budgets."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from filelock import FileLock

from tuner.store.records import read_trials

BIN = Path(sys.executable).parent
CLI = [str(BIN / "mbrl-tune")]
ENV = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "RAY_AUTH_MODE": "token"}


def sweep_args(dataset: Path, storage: Path, name: str, trials: int, *extra: str) -> list[str]:
    return [*CLI, "sweep", "--space", "quick", "--dataset", str(dataset), "--trials", str(trials),
            "--storage", str(storage), "--name", name, "--preset", "tiny", "--init-trials", "3", *extra]


def finished(sweep_dir: Path, experiment: str) -> list:
    return [r for r in read_trials(sweep_dir / experiment) if r.status == "finished"]


def kill_session(proc: subprocess.Popen) -> None:
    """SIGKILL every process of the session ``proc`` leads (the driver and the Ray cluster it started)."""
    subprocess.run(["pkill", "-9", "-s", str(proc.pid)], check=False)
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def small_sweep(hopper_random_file: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A real 3-trial, 2-seed sweep, run once for the tests that read it."""
    storage = tmp_path_factory.mktemp("sweeps")
    done = subprocess.run(sweep_args(hopper_random_file, storage, "s", 3, "--concurrency", "2", "--seeds", "2"),
                          capture_output=True, text=True, timeout=600, env=ENV)
    assert done.returncode == 0, done.stderr[-3000:]
    return storage / "s", done.stdout


def test_sweep_runs_baseline_first_and_trains_each_pool_once(small_sweep: tuple[Path, str],
                                                             hopper_random_file: Path) -> None:
    sweep, stdout = small_sweep
    assert "3/3 trials complete" in stdout and "best so far" in stdout
    records = finished(sweep, hopper_random_file.stem)
    assert len(records) == 3
    for r in records:  # the objective is the mean over seeds, each seed's score kept
        assert r.last["score"] == pytest.approx((r.last["score_seed0"] + r.last["score_seed1"]) / 2)
    # The published hopper-random setting (mopo_official: h=5, lambda=1) ran as a trial.
    assert any(r.overrides["rollout.horizon"] == 5 and r.overrides["lam"] == 1.0
               and r.overrides["penalty"] == "max_aleatoric" for r in records)
    # One pool per (dataset, seed): two seeds, two trainings, however many trials.
    assert len((sweep / "pools" / "trainings.log").read_text().splitlines()) == 2

    status = subprocess.run([*CLI, "status", str(sweep)], capture_output=True, text=True, env=ENV)
    assert status.returncode == 0 and "3/3 trials complete" in status.stdout


def test_modern_space_sweeps_mopo_mobile_and_ravl_trials(hopper_random_file: Path, tmp_path: Path) -> None:
    """Ax over modern.yaml at the tiny preset: the baseline, then Sobol points that reach the other methods
    (``--search-seed`` makes the draw the same on every run)."""
    args = sweep_args(hopper_random_file, tmp_path, "m", 5, "--concurrency", "2", "--search-seed", "3")
    args[args.index("quick")] = "modern"
    done = subprocess.run(args, capture_output=True, text=True, timeout=900, env=ENV)
    assert done.returncode == 0, done.stderr[-3000:]
    records = finished(tmp_path / "m", hopper_random_file.stem)
    assert len(records) == 5
    methods = {r.overrides["penalty"] for r in records}
    assert "max_aleatoric" in methods and len(methods) >= 3, methods
    for r in records:
        assert ("sac.num_critics" in r.overrides) == (r.overrides["penalty"] == "none")
        assert math.isfinite(r.last["q_mean"])


def test_export_then_train_reproduces_the_trial(small_sweep: tuple[Path, str], hopper_random_file: Path,
                                                tmp_path: Path) -> None:
    sweep, _ = small_sweep
    records = finished(sweep, hopper_random_file.stem)
    out = tmp_path / "best.yaml"
    exported = subprocess.run([*CLI, "export", str(sweep), "--out", str(out), "--top", "2"],
                              capture_output=True, text=True, env=ENV)
    assert exported.returncode == 0, exported.stderr
    doc = yaml.safe_load(out.read_text())
    best = max(records, key=lambda r: r.last["score"])
    assert doc["sweep"]["score"] == best.last["score"] and (tmp_path / "best-2.yaml").exists()
    trained = subprocess.run([*CLI, "train", "--config", str(out), "--out", str(tmp_path / "t"), "--quiet"],
                             capture_output=True, text=True, timeout=300, env=ENV)
    assert trained.returncode == 0, trained.stderr
    results = json.loads((tmp_path / "t" / "results.json").read_text())
    # Same config, same seed, same machine: the exported config reproduces the trial's seed-0 score.
    assert results["score"] == pytest.approx(best.last["score_seed0"])
    # A copy cut short (outside damage: the export is atomic) is refused in one line, not trained as another
    # config: cut YAML can parse as a valid document.
    whole = (tmp_path / "best-2.yaml").read_bytes()
    (tmp_path / "half.yaml").write_bytes(whole[: len(whole) // 2])
    refused = subprocess.run([*CLI, "train", "--config", str(tmp_path / "half.yaml"), "--out", str(tmp_path / "h")],
                             capture_output=True, text=True, timeout=120, env=ENV)
    assert refused.returncode == 2 and "exported configuration cut short" in refused.stderr, refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and not (tmp_path / "h").exists()


def test_previous_sweep_warm_starts_the_searcher(small_sweep: tuple[Path, str], hopper_random_file: Path) -> None:
    from search_spaces.parse import load_space
    from trials.data.dataset import load_hdf5
    from tuner.run.sweep import SweepSpec, previous_results, warm_start_points

    sweep, _ = small_sweep
    space = load_space(sweep / "space.yaml")
    ds = load_hdf5(hopper_random_file)
    points = previous_results(sweep, ds, space)
    scores = sorted(r.last["score"] for r in finished(sweep, hopper_random_file.stem))
    assert sorted(score for _, score in points) == pytest.approx(scores)
    spec = SweepSpec.load(sweep).model_copy(update={"warm_start": [str(sweep)]})
    first, *rest = warm_start_points(spec, ds, space)
    assert first[1] is None and first[0]["lam"] == 1.0, "the unscored hand-tuned baseline comes first"
    assert len(rest) == 3 and all(score is not None for _, score in rest)


def test_bad_sweep_inputs_are_one_line(hopper_random_file: Path, tmp_path: Path,
                                      cli: Callable[..., subprocess.CompletedProcess]) -> None:
    bad_space = tmp_path / "bad.yaml"
    bad_space.write_text("parameters:\n  rollout.horizon: {int: [10, 1]}\n")
    for args, message in (
        (["--space", str(bad_space)], "rollout.horizon"),
        (["--space", "nosuch"], "not a built-in space"),
        (["--searcher", "grid"], "--searcher grid: unknown"),
        (["--set", "lam=-2"], "field 'lam'"),
    ):
        cmd = sweep_args(hopper_random_file, tmp_path, "bad", 2)
        i = cmd.index(args[0]) if args[0] in cmd else len(cmd)
        cmd = cmd[:i] + args + cmd[i + 2:] if args[0] in cmd else cmd + args
        done = cli(*cmd[1:])  # refused before Ray starts: the entry point in this process
        assert done.returncode == 2, (args, done.stderr[-2000:])
        assert message in done.stderr and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert not (tmp_path / "bad").exists(), "nothing is written for a refused sweep"
    missing = cli("resume", str(tmp_path / "nothing"))
    assert missing.returncode == 2 and "not a sweep folder" in missing.stderr


def test_kill_then_resume_reaches_target_and_continues_the_search(hopper_random_file: Path,
                                                                   tmp_path: Path) -> None:
    sweep = tmp_path / "k"
    exp = hopper_random_file.stem
    driver = subprocess.Popen(sweep_args(hopper_random_file, tmp_path, "k", 7), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, env=ENV, start_new_session=True)
    try:
        deadline = time.time() + 300
        while len(finished(sweep, exp)) < 2 and time.time() < deadline:
            time.sleep(1)
        before = {r.trial_id: r.last["score"] for r in finished(sweep, exp)}
        assert len(before) >= 2
    finally:
        kill_session(driver)  # the driver and its in-process Ray cluster, as in a crash or reboot
    before = {r.trial_id: r.last["score"] for r in finished(sweep, exp)}
    assert len(before) < 7, "the driver must be killed mid-sweep"

    # While a driver holds the sweep (here: this test, through the same lock file), resume is refused.
    with FileLock(str(sweep / ".driver.lock")):
        second = subprocess.run([*CLI, "resume", str(sweep)], capture_output=True, text=True, env=ENV,
                                timeout=120)
    assert second.returncode == 2 and "already running" in second.stderr
    assert len(finished(sweep, exp)) == len(before), "a refused resume touches nothing"

    resumed = subprocess.run([*CLI, "resume", str(sweep)], capture_output=True, text=True, env=ENV,
                             timeout=600, start_new_session=True)
    out, err = resumed.stdout, resumed.stderr
    assert resumed.returncode == 0, err[-3000:]
    after = finished(sweep, exp)
    assert len(after) == 7, out
    scores = {r.trial_id: r.last["score"] for r in after}
    assert all(scores[t] == s for t, s in before.items()), "completed trials are kept as they were"
    # A restarted design would propose the same baseline and Sobol points again; a continued one
    # never repeats a configuration.
    configs = [json.dumps(r.overrides, sort_keys=True) for r in after]
    assert len(set(configs)) == 7
    # The resumed driver's "best so far" counts the trials that ended before the kill too.
    last_best = [line for line in out.splitlines() if "best so far" in line][-1]
    assert last_best.split("best so far ")[1].startswith(f"{max(scores.values()):.1f} "), (last_best, scores)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _dashboard_up(url: str) -> bool:
    """Any HTTP answer counts (with token auth the API answers 401 to an anonymous request)."""
    try:
        with urllib.request.urlopen(f"{url}/api/version", timeout=2):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def _agent_ports() -> list[str]:
    """Free ports for a node's agents: the defaults collide with any other Ray node on this host (another
    test's, or a study running beside the suite), and a node whose agents cannot bind never comes up."""
    return ["--dashboard-agent-listen-port", str(_free_port()), "--runtime-env-agent-port", str(_free_port()),
            "--metrics-export-port", str(_free_port())]


def _start_head(num_cpus: int):
    """A real Ray head started with ``ray start --head --block`` in its own session; yields
    (gcs address, dashboard url, the processes to end, temp dir). Ended by killing exactly those sessions."""
    port, dash = _free_port(), _free_port()
    temp = Path("/tmp") / f"rt{os.getpid()}_{port}"  # short: Ray's socket paths have a length limit
    head = subprocess.Popen([str(BIN / "ray"), "start", "--head", "--block", "--port", str(port),
                             "--dashboard-port", str(dash), "--dashboard-host", "127.0.0.1",
                             "--num-cpus", str(num_cpus), "--temp-dir", str(temp), "--include-dashboard", "true",
                             *_agent_ports()],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV, start_new_session=True)
    procs = [head]
    try:
        deadline = time.time() + 90
        while time.time() < deadline:
            ok = subprocess.run([str(BIN / "ray"), "status", "--address", f"127.0.0.1:{port}"],
                                capture_output=True, env=ENV).returncode == 0
            if ok and _dashboard_up(f"http://127.0.0.1:{dash}"):
                break
            time.sleep(2)
        else:
            pytest.fail("ray head did not come up")
        yield f"127.0.0.1:{port}", f"http://127.0.0.1:{dash}", procs, temp
    finally:
        for p in procs:  # only the sessions this fixture started
            subprocess.run(["pkill", "-9", "-s", str(p.pid)], check=False)
        for p in procs:
            p.wait(timeout=30)




@pytest.fixture
def ray_head():
    yield from _start_head(1)


@pytest.fixture
def ray_head_without_cpus():
    """A head that offers no CPU: every trial must run on a worker node."""
    yield from _start_head(0)


def test_ray_job_submit_runs_a_sweep_on_a_real_head(ray_head, hopper_random_file: Path, tmp_path: Path) -> None:
    _, dashboard, _, _ = ray_head
    workdir = tmp_path / "job"
    workdir.mkdir()
    (workdir / "README.txt").write_text("working dir of a submitted sweep\n")
    cmd = " ".join(sweep_args(hopper_random_file, tmp_path, "job", 2)[1:])
    deadline = time.time() + 240  # the head's job agent can come up well after its dashboard on a busy machine
    while True:
        done = subprocess.run([str(BIN / "ray"), "job", "submit", "--address", dashboard, "--working-dir",
                               str(workdir), "--", "mbrl-tune", *cmd.split()], capture_output=True, text=True,
                              timeout=600, env=ENV)
        if "No available agent to submit job" not in done.stdout + done.stderr or time.time() > deadline:
            break
        time.sleep(2)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert "succeeded" in done.stdout
    assert len(finished(tmp_path / "job", hopper_random_file.stem)) == 2


def test_two_node_cluster_runs_trials_on_the_worker_node(ray_head_without_cpus, hopper_random_file: Path,
                                                         tmp_path: Path) -> None:
    """The driver joins the cluster on the head, which offers no CPU, so the pool training and every trial
    must be placed on the second node: a placement the scheduler cannot choose otherwise, under any load."""
    address, _, procs, _ = ray_head_without_cpus
    worker = subprocess.Popen([str(BIN / "ray"), "start", "--address", address, "--block", "--num-cpus", "2",
                               *_agent_ports()],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV, start_new_session=True)
    procs.append(worker)
    deadline = time.time() + 120
    while time.time() < deadline:
        status = subprocess.run([str(BIN / "ray"), "status", "--address", address], capture_output=True,
                                text=True, env=ENV).stdout
        if "/2.0 CPU" in status:
            break
        time.sleep(2)
    else:
        pytest.fail("the worker node did not join")
    done = subprocess.run(sweep_args(hopper_random_file, tmp_path, "two", 4, "--concurrency", "2"),
                          capture_output=True, text=True, timeout=600, env={**ENV, "RAY_ADDRESS": address})
    assert done.returncode == 0, done.stderr[-3000:]
    records = finished(tmp_path / "two", hopper_random_file.stem)
    assert len(records) == 4
    nodes = json.loads(subprocess.run(
        [sys.executable, "-c", "import json, ray; ray.init(address='auto', log_to_driver=False); "
         "print(json.dumps({n['NodeID']: n['Resources'].get('CPU', 0) for n in ray.nodes() if n['Alive']}))"],
        capture_output=True, text=True, timeout=120, env={**ENV, "RAY_ADDRESS": address}).stdout.splitlines()[-1])
    worker_ids = {node for node, cpus in nodes.items() if cpus > 0}
    assert len(nodes) == 2 and len(worker_ids) == 1, nodes
    assert {r.last["node_id"] for r in records} == worker_ids, "every trial ran on the worker node"


def _start_worker(address: str, name: str, procs: list) -> None:
    """A worker node with one CPU on this host, with its own agent ports (see ``_agent_ports``)."""
    procs.append(subprocess.Popen(
        [str(BIN / "ray"), "start", "--address", address, "--block", "--num-cpus", "1", "--resources",
         json.dumps({f"node_{name}": 1}), *_agent_ports()],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV, start_new_session=True))


def _has_cpus(address: str, cpus: int) -> bool:
    status = subprocess.run([str(BIN / "ray"), "status", "--address", address], capture_output=True, text=True,
                            env=ENV).stdout
    return f"/{cpus}.0 CPU" in status


def _join_worker(address: str, name: str, procs: list, cpus: int) -> None:
    """Start worker ``name`` and wait until the cluster offers ``cpus`` CPUs. A worker whose ``ray start``
    ends before that (one of its agent ports taken by another node between ``_free_port`` and its bind, as
    when another test starts Ray beside this one) is started again with fresh ports, up to 3 times."""
    for _ in range(3):
        _start_worker(address, name, procs)
        worker = procs[-1]
        deadline = time.time() + 180
        while time.time() < deadline and worker.poll() is None:
            if _has_cpus(address, cpus):
                return
            time.sleep(2)
        if worker.poll() is None:
            break  # alive but not joined: not a port race
    pytest.fail(f"the cluster did not reach {cpus} CPUs")


def test_a_worker_node_lost_mid_trial_continues_on_another_from_its_checkpoint(
        ray_head_without_cpus, hopper_random_file: Path, tmp_path: Path) -> None:
    """The trial starts on worker a (the only CPU); worker b joins; worker a is killed (its whole process
    session, as a lost machine) after the trial checkpointed: Tune restarts the trial on b from its last
    checkpoint, and the sweep completes with nothing lost."""
    address, _, procs, _ = ray_head_without_cpus
    _join_worker(address, "a", procs, 1)
    args = sweep_args(hopper_random_file, tmp_path, "lost", 1, "--concurrency", "1", "--set", "epochs=100", "--set",
                      "steps_per_epoch=100")  # long enough to outlast worker b's joining on a busy machine
    driver = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              env={**ENV, "RAY_ADDRESS": address}, start_new_session=True)
    exp = tmp_path / "lost" / hopper_random_file.stem
    try:
        deadline = time.time() + 400
        while time.time() < deadline:
            results = list(exp.glob("trial-*/result.json"))
            if results and len(results[0].read_text().splitlines()) >= 3:
                break
            time.sleep(0.5)
        else:
            pytest.fail("the trial did not reach its third epoch")
        _join_worker(address, "b", procs, 2)
        subprocess.run(["pkill", "-9", "-s", str(procs[1].pid)], check=False)  # worker a, all of it
        at_kill = len(results[0].read_text().splitlines())
        _, err = driver.communicate(timeout=600)
    finally:
        subprocess.run(["pkill", "-9", "-s", str(driver.pid)], check=False)
    assert driver.returncode == 0, err[-3000:]
    (record,) = read_trials(exp)
    assert record.status == "finished" and record.last["epoch"] == 100
    rows = [json.loads(line) for line in (record.path / "result.json").read_text().splitlines()]
    epochs = [r["epoch"] for r in rows]
    assert at_kill < 100, f"the trial had ended before worker a was lost: {epochs}"
    assert epochs.count(1) == 1, f"the trial started over instead of resuming: {epochs}"
    assert len({r["node_id"] for r in rows}) == 2, f"it ran on a, then on b: {[r['node_id'][:6] for r in rows]}"


def test_asha_stops_trials_and_status_says_so(hopper_random_file: Path, tmp_path: Path) -> None:
    done = subprocess.run(sweep_args(hopper_random_file, tmp_path, "asha", 6, "--early-stop", "asha",
                                     "--searcher", "random", "--concurrency", "1"),
                          capture_output=True, text=True, timeout=600, env=ENV)
    assert done.returncode == 0, done.stderr[-3000:]
    records = read_trials(tmp_path / "asha" / hopper_random_file.stem)
    stopped = [r for r in records if r.status == "stopped"]
    assert len(records) == 6 and stopped  # the scheduler ended some trials at its first rung
    for r in records:  # a trial is either stopped before the last epoch or ran all of them
        assert (r.status, r.last["epoch"] < 3) in (("stopped", True), ("finished", False), ("diverged", False))
        assert (r.path / "stopped_early.json").exists() == (r.status == "stopped")
    assert done.stdout.count(" stopped: score") == len(stopped)
    status = subprocess.run([*CLI, "status", str(tmp_path / "asha")], capture_output=True, text=True, env=ENV)
    assert status.returncode == 0 and "6/6 trials complete" in status.stdout and "stopped" in status.stdout


def _stop_after(args: list[str], sweep: Path, exp: str, finished_count: int, signum: int) -> dict[str, float]:
    """Run a driver, send it (alone, as a terminal or a scheduler would) ``signum`` once ``finished_count``
    trials have finished, and check it ended gracefully short of its count: a non-zero exit, no traceback.
    Returns the finished trials' scores."""
    driver = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
                              start_new_session=True)
    try:
        deadline = time.time() + 300
        while len(finished(sweep, exp)) < finished_count and time.time() < deadline:
            time.sleep(0.5)
        driver.send_signal(signum)
        out, err = driver.communicate(timeout=180)
    finally:
        kill_session(driver)  # whatever the graceful stop left running
    scores = {r.trial_id: r.last["score"] for r in finished(sweep, exp)}
    assert driver.returncode != 0, out[-2000:]
    assert finished_count <= len(scores) < 5 and "Traceback" not in err, err[-3000:]
    return scores


def test_interrupted_driver_saves_then_resume_completes(hopper_random_file: Path, tmp_path: Path) -> None:
    """Ctrl-C (SIGINT) of the sweep's driver and then a scheduler's stop (SIGTERM) of the resumed one both
    end it gracefully, with a non-zero exit since the sweep is short of its count; a last resume reaches
    the count with no finished trial lost."""
    import signal

    sweep = tmp_path / "i"
    exp = hopper_random_file.stem
    first = _stop_after(sweep_args(hopper_random_file, tmp_path, "i", 5), sweep, exp, 1, signal.SIGINT)
    second = _stop_after([*CLI, "resume", str(sweep)], sweep, exp, len(first) + 1, signal.SIGTERM)
    assert all(second[t] == s for t, s in first.items())

    resumed = subprocess.run([*CLI, "resume", str(sweep)], capture_output=True, text=True, env=ENV,
                             timeout=600, start_new_session=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    after = {r.trial_id: r.last["score"] for r in finished(sweep, exp)}
    assert len(after) == 5 and all(after[t] == s for t, s in second.items())
