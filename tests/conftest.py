"""Shared fixtures: small real datasets generated once per test session, small real filesystems (tmpfs)
to fill up, and the CLI's entry point run in this process."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

from trials.data.dataset import Dataset, load_hdf5, save_hdf5
from trials.envs import ENVS
from trials.generation.generate import generate
from trials.generation.settings import GenerateConfig

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def hopper_random_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real hopper-random dataset of 3,000 transitions, generated in MuJoCo."""
    path = tmp_path_factory.mktemp("data") / "hopper-random.hdf5"
    ds = generate(ENVS["hopper"], "random", 3000, seed=0, cfg=GenerateConfig(), policy_dir=path.parent,
                  progress=False)
    save_hdf5(ds, path)
    return path


@pytest.fixture
def hopper_random(hopper_random_file: Path) -> Dataset:
    return load_hdf5(hopper_random_file)


@pytest.fixture
def mount_tmpfs(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """``mount_tmpfs("64m")``: a real filesystem of that size, mounted under ``tmp_path`` and unmounted
    after the test (skipped where mounting needs a root this process is not)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    mounted: list[Path] = []

    def mount(size: str) -> Path:
        mnt = tmp_path / f"fs-{uuid.uuid4().hex[:6]}"
        mnt.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)], capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
        mounted.append(mnt)
        return mnt

    try:
        yield mount
    finally:
        for mnt in mounted:
            subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill_filesystem(fs: Path) -> Path:
    """Take every free byte of ``fs``; returns the filler file (topped up when called again)."""
    filler = fs / "filler"
    with open(filler, "ab", buffering=0) as f:  # unbuffered: nothing is left to fail at close
        for block in (1 << 20, 4096, 1):
            try:
                while f.write(b"\0" * block):
                    pass
            except OSError:
                pass
    return filler


@pytest.fixture
def fill() -> Callable[[Path], Path]:
    """:func:`fill_filesystem`, for tests (a fixture: test modules do not import conftest)."""
    return fill_filesystem


def main_cli(*args: str) -> subprocess.CompletedProcess:
    """``mbrl-tune ARGS...`` through ``tuner.cli.main.main`` in this process: exit code, stdout, stderr. For
    commands that start no Ray and train nothing: it saves the 2-5 s interpreter start (torch, Ray, Ax
    imports) of a process per call on a 2-core machine."""
    from tuner.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


@pytest.fixture(scope="session")
def cli() -> Callable[..., subprocess.CompletedProcess]:
    """:func:`main_cli`, for tests (a fixture: test modules do not import conftest)."""
    return main_cli



@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """Under ``pytest -n 2`` (``make test``): each test module runs whole on one worker, and so does the
    analysis package (its real sweep, comparison and calibration are package fixtures), so that module and
    package fixtures are made once. (xdist's own ``--dist loadgroup`` does not group under pytest 9.2: it
    renames items through an attribute pytest no longer reads.)"""
    from xdist.scheduler import LoadScopeScheduling  # noqa: PLC0415

    class ByModule(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return "tests/analysis" if path.startswith("tests/analysis/") else path

    return ByModule(config, log)
