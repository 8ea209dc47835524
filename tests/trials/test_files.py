"""Files are complete or absent: every writer goes through ``trials.files.atomic_write``, which leaves
neither half a file nor a temporary one when writing fails, on a real full filesystem too."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest
import torch

from trials.files import atomic_write, atomic_write_bytes, atomic_write_text


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "state.json"
    atomic_write_text(target, "old")
    assert target.read_text() == "old" and target.stat().st_mode & 0o777 != 0o600

    def half_then_fail(tmp: Path) -> None:
        tmp.write_text("half")
        raise KeyboardInterrupt  # an interrupt, not only an error, must clean up

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, half_then_fail)
    assert target.read_text() == "old"
    assert sorted(p.name for p in target.parent.iterdir()) == ["state.json"]


def test_the_temporary_name_keeps_the_suffix_and_is_hidden(tmp_path: Path) -> None:
    seen: list[str] = []
    atomic_write(tmp_path / "pool-abc.pt", lambda tmp: seen.append(tmp.name) or tmp.write_bytes(b"x"))
    assert seen[0].startswith(".pool-abc.pt.") and seen[0].endswith(".tmp.pt")
    assert not list(tmp_path.glob("pool-*.tmp*")), "globs for finished files never match a temporary"


def test_a_full_filesystem_raises_and_leaves_the_old_file_whole(
        mount_tmpfs: Callable[[str], Path], fill: Callable[[Path], Path]) -> None:
    fs = mount_tmpfs("1m")
    target = fs / "pool.pt"
    atomic_write(target, partial(torch.save, {"w": torch.zeros(4)}))
    filler = fill(fs)
    with pytest.raises((OSError, RuntimeError)):  # torch reports ENOSPC as a RuntimeError
        atomic_write(target, partial(torch.save, {"w": torch.zeros(100_000)}))  # 400 kB: does not fit
    with pytest.raises(OSError):
        atomic_write_bytes(fs / "new.bin", b"\0" * 100_000)
    assert sorted(p.name for p in fs.iterdir()) == ["filler", "pool.pt"], "no temporary and no half file"
    assert torch.equal(torch.load(target, weights_only=True)["w"], torch.zeros(4))
    filler.unlink()
