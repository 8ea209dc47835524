"""The filesystem Tune writes through: on a real full filesystem (a 1 MiB tmpfs) a folder copied over its
previous copy, as Tune's sync does, leaves every old file whole; normal writes are the local ones."""

from __future__ import annotations

import os
import pickle
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow.fs as pafs
import pytest
from ray.train._internal.storage import _upload_to_fs_path

from tuner.faults.storage import whole_file_fs


def staging(root: Path, sizes: dict[str, int]) -> dict[str, bytes]:
    """A driver staging folder as Tune keeps one: a result file per trial."""
    contents = {}
    for trial, size in sizes.items():
        (root / trial).mkdir(parents=True, exist_ok=True)
        contents[trial] = os.urandom(size)
        (root / trial / "result.json").write_bytes(contents[trial])
    return contents


def test_a_sync_onto_a_full_filesystem_leaves_every_previous_file_whole(
        mount_tmpfs: Callable[[str], Path], fill: Callable[[Path], Path], tmp_path: Path) -> None:
    tiny_fs = mount_tmpfs("1m")
    fs, src, dst = whole_file_fs(), tmp_path / "staging", tiny_fs / "exp"
    first = staging(src, {"t1": 100_000, "t2": 100_000, "t3": 100_000})
    _upload_to_fs_path(str(src), fs, str(dst))
    assert {t: (dst / t / "result.json").read_bytes() for t in first} == first
    fill(tiny_fs)
    with open(src / "t3" / "result.json", "ab") as f:  # a running trial's results grew since
        f.write(os.urandom(50_000))

    with pytest.raises(OSError, match="No space left"):
        _upload_to_fs_path(str(src), fs, str(dst))

    # pyarrow returns at the first failed file while its other copies finish in their threads: wait for them
    deadline = time.monotonic() + 60
    while [p for p in dst.rglob("*") if p.name.endswith(".tmp")] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [p for p in dst.rglob("*") if p.name.endswith(".tmp")], "no temporary file left behind"
    assert {t: (dst / t / "result.json").read_bytes() for t in first} == first  # the previous copies, whole
    (tiny_fs / "filler").unlink()
    _upload_to_fs_path(str(src), fs, str(dst))  # space freed: the next sync writes the new content
    assert (dst / "t3" / "result.json").read_bytes() == (src / "t3" / "result.json").read_bytes()


def test_writes_reads_copies_and_pickling_are_the_local_filesystems(tmp_path: Path) -> None:
    fs = pickle.loads(pickle.dumps(whole_file_fs()))  # as Ray sends it to the workers
    assert fs.equals(whole_file_fs()) and not fs.equals(pafs.LocalFileSystem())
    target = tmp_path / "a" / "b.bin"
    fs.create_dir(str(target.parent), recursive=True)
    with fs.open_output_stream(str(target)) as out:
        out.write(b"x" * 3_000_000)
    with fs.open_input_stream(str(target)) as f:
        assert f.readall() == b"x" * 3_000_000
    fs.copy_file(str(target), str(tmp_path / "c.bin"))
    assert (tmp_path / "c.bin").read_bytes() == target.read_bytes()
    with fs.open_append_stream(str(target)) as out:
        out.write(b"y")
    assert target.stat().st_size == 3_000_001
    listed = fs.get_file_info(pafs.FileSelector(str(tmp_path), recursive=True))
    assert {i.path for i in listed if i.type == pafs.FileType.File} == {str(target), str(tmp_path / "c.bin")}
    assert sorted(os.listdir(tmp_path)) == ["a", "c.bin"], "only the files written, no temporary ones"
