"""Files: written so that readers never see half of one (a temporary name beside the target, then a
rename), and YAML mappings read back with one-line errors."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml


def file_mode() -> int:
    """The mode a plain ``open(path, "w")`` would give: 0666 less the process umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it over ``path``: the file is
    complete or absent, and a write that fails (a full disk, an interrupt) leaves no temporary file.

    The temporary name keeps ``path``'s suffix (``.x.tmp.png``) for writers that pick a format from it,
    and starts with a dot, so globs for the finished files (``pool-*.pt``) never see it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        os.chmod(tmp, file_mode())  # mkstemp's 0600 would hide results from other users of a shared disk
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: Path, text: str) -> Path:
    """:func:`atomic_write` of a text."""
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """:func:`atomic_write` of bytes."""
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def read_yaml_mapping(path: Path, error: type[Exception], what: str) -> dict[str, Any]:
    """The mapping a YAML (or JSON) file holds, or ``error`` with one line: file missing, not YAML, or
    not a mapping (of ``what``, e.g. "config fields")."""
    if not path.is_file():
        raise error(f"{path}: file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise error(f"{path}: not valid YAML/JSON ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise error(f"{path}: expected a mapping of {what}, got {type(data).__name__}")
    return data
