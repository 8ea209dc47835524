"""Real sweeps, comparisons and calibrations made once for the analysis tests, with the real CLI and the
tiny budget (trials of a few seconds). Commands that start Ray run as separate processes, as users run
them; the others call the same entry point (``tuner.cli.main.main``) in this process, which saves a
2-5 s interpreter start (torch, Ray, Ax imports) per call on a 2-core machine."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
CLI = [str(BIN / "mbrl-tune")]
ENV = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "RAY_AUTH_MODE": "token"}
#: A small dynamics pool for calibration (the defaults are MOPO's 7 x 200-unit, 4-layer members).
#: Trained 20 epochs: with targets in their own units a 5-epoch pool ends most 5-step rollouts early.
SMALL_POOL = ["--set", "dynamics.hidden=32", "--set", "dynamics.layers=2", "--set", "dynamics.pool_size=5",
              "--set", "dynamics.max_epochs=20", "--set", "num_models=5", "--set", "num_elites=3"]


def run_cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, env=ENV)


def make_sweep(dataset: Path, storage: Path, name: str, *extra: str) -> Path:
    done = run_cli("sweep", "--space", "quick", "--dataset", str(dataset), "--storage", str(storage), "--name", name,
                   "--preset", "tiny", "--concurrency", "2", *extra)
    assert done.returncode == 0, done.stderr[-3000:]
    return storage / name


@dataclass
class Analysed:
    """The Ax sweep after ``compare`` and ``calibrate`` ran on it."""

    sweep: Path
    compare_stdout: str
    calibrate_stdout: str


@pytest.fixture(scope="package")
def sweep_dir(hopper_random_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-trial Ax sweep (the hand-tuned baseline first) on the 3,000-transition hopper-random file."""
    return make_sweep(hopper_random_file, tmp_path_factory.mktemp("sweeps"), "ax3", "--trials", "3",
                      "--init-trials", "3")


@pytest.fixture(scope="package")
def random_sweep_dir(hopper_random_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-trial random-search sweep on the same data (a second sweep for multi-sweep reports)."""
    return make_sweep(hopper_random_file, tmp_path_factory.mktemp("sweeps"), "rand2", "--trials", "2",
                      "--searcher", "random")


@pytest.fixture(scope="package")
def analysed(sweep_dir: Path, hopper_random_file: Path,
             cli: Callable[..., subprocess.CompletedProcess]) -> Analysed:
    """``compare`` (2 fresh seeds) and ``calibrate`` (into ``<sweep>/calibration``) run on the Ax sweep."""
    compared = run_cli("compare", str(sweep_dir), "--seeds", "2")
    assert compared.returncode == 0, compared.stderr[-3000:]
    calibrated = cli("calibrate", "--dataset", str(hopper_random_file), "--pool-dir", str(sweep_dir / "pools"),
                     "--states", "150", "--horizons", "1", "5", *SMALL_POOL, "--out", str(sweep_dir / "calibration"))
    assert calibrated.returncode == 0, calibrated.stderr[-3000:]
    return Analysed(sweep_dir, compared.stdout, calibrated.stdout)
