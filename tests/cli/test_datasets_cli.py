"""`mbrl-tune datasets ...` as a user runs it: the real console script in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

CLI = [str(Path(sys.executable).parent / "mbrl-tune")]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=300)


def test_generate_then_info(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "hopper-random.hdf5"
    done = run("datasets", "generate", "--env", "hopper", "--level", "random", "--size", "1500",
               "--seed", "1", "--out", str(out), "--quiet")
    assert done.returncode == 0, done.stderr
    assert f"wrote {out}: 1500 transitions" in done.stdout
    info = run("datasets", "info", str(out), "--json")
    assert info.returncode == 0, info.stderr
    summary = json.loads(info.stdout)
    assert summary["transitions"] == 1500 and summary["env"] == "hopper" and summary["has_qpos_qvel"]
    assert summary["episodes"] > 10


@pytest.mark.parametrize("content, message", [
    ("garbage", "not a readable HDF5 file"),
    (None, "file not found"),
])
def test_bad_file_is_one_line_exit_2(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "hopper.hdf5"
    if content is not None:
        path.write_text(content)
    done = run("datasets", "info", str(path))
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and message in done.stderr and "Traceback" not in done.stderr


def test_inconsistent_file_is_named_with_its_field(tmp_path: Path) -> None:
    path = tmp_path / "hopper-short.hdf5"
    with h5py.File(path, "w") as f:
        for name, shape in (("observations", (10, 11)), ("actions", (9, 3)), ("rewards", (10,)),
                            ("next_observations", (10, 11)), ("terminals", (10,)), ("timeouts", (10,))):
            f[name] = np.zeros(shape, dtype="float32")
    done = run("datasets", "info", str(path))
    assert done.returncode == 2
    assert done.stderr.strip() == (f"mbrl-tune: error: {path}: field 'actions': length 9 differs from "
                                   f"observations' 10")


def test_bad_arguments_exit_2_and_write_nothing(tmp_path: Path) -> None:
    out = tmp_path / "x.hdf5"
    done = run("datasets", "generate", "--env", "ant", "--level", "random", "--out", str(out))
    assert done.returncode == 2 and "invalid choice: 'ant'" in done.stderr
    done = run("datasets", "generate", "--env", "hopper", "--level", "random", "--size", "0", "--out", str(out))
    assert done.returncode == 2 and "must be a positive integer" in done.stderr
    assert not out.exists()
