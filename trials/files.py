"""Files: written so that readers never see half of one (a temporary name beside the target, then a
rename), and read back verified: a file that cannot be read whole is one line naming it and what to do
(:class:`DamagedFileError`), never a traceback from deep inside a parser."""

from __future__ import annotations

import errno
import json
import os
import pickle
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml


class DamagedFileError(ValueError):
    """A stored file that cannot be read back whole (truncated, zeroed, another kind of file); the message
    is one line naming the file, what it should have held and what to do."""


#: What reading a damaged torch file raises (a zip reader's error, a truncated pickle, a wrong type).
TORCH_READ_ERRORS = (OSError, EOFError, RuntimeError, ValueError, pickle.UnpicklingError, zipfile.BadZipFile,
                      AttributeError, ImportError, KeyError, IndexError)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:100]}" if text else type(exc).__name__


def read_torch(path: Path, what: str, hint: str, **load: Any) -> Any:
    """``torch.load(path, **load)``, or :class:`DamagedFileError` (one line: the file, ``what`` it should
    hold, why it could not be read, and ``hint``, what to do)."""
    import torch  # noqa: PLC0415  (readers of JSON state need no torch)

    try:
        return torch.load(path, **load)
    except TORCH_READ_ERRORS as exc:
        raise DamagedFileError(f"{path}: {what} unreadable ({_first_line(exc)}); {hint}") from None


def read_json(path: Path, what: str, hint: str, keys: tuple[str, ...] = ()) -> Any:
    """The JSON in ``path``, or :class:`DamagedFileError` (one line, as :func:`read_torch`); with ``keys``,
    it must be a mapping that holds them (another file of the same format in its place is damage too)."""
    try:
        data = json.loads(Path(path).read_text())
    except (UnicodeDecodeError, ValueError) as exc:
        raise DamagedFileError(f"{path}: {what} unreadable ({_first_line(exc)}); {hint}") from None
    if keys and not (isinstance(data, dict) and all(k in data for k in keys)):
        raise DamagedFileError(f"{path}: not a {what} (no {', '.join(keys)}); {hint}")
    return data


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
    except BaseException as exc:
        full = isinstance(exc, Exception) and not _is_enospc(exc) and _nearly_full(path.parent)  # before the unlink
        tmp.unlink(missing_ok=True)
        if full:
            # Some writers (torch.save) report a full disk as a bare stream error: name it and the file.
            raise OSError(errno.ENOSPC, "No space left on device", str(path)) from exc
        raise
    return path


def _is_enospc(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno == errno.ENOSPC


#: Free bytes under which a filesystem counts as full (what is left when a write hits ENOSPC).
FULL_BELOW = 1 << 20


def _nearly_full(folder: Path) -> bool:
    """Under :data:`FULL_BELOW` bytes free on the filesystem of ``folder``."""
    try:
        st = os.statvfs(folder)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < FULL_BELOW


def atomic_write_text(path: Path, text: str) -> Path:
    """:func:`atomic_write` of a text."""
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """:func:`atomic_write` of bytes."""
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


#: The first and last lines of a YAML file this tool writes whole (:func:`framed_yaml`): YAML cut short can
#: still parse, as a different valid document, so a file that opens with the first and lacks the last is
#: refused (:func:`check_framed`). ``{kind}`` names what the file is ("study record", "trial config").
_OPEN_PREFIX, _OPEN_SUFFIX = "# mbrl-tune ", ": written whole, closed by its last line"
FRAME_OPEN = _OPEN_PREFIX + "{kind}" + _OPEN_SUFFIX + "\n"
FRAME_CLOSE = "# end of {kind}\n"


def framed_yaml(data: Any, kind: str) -> str:
    """``data`` as YAML between :data:`FRAME_OPEN` and :data:`FRAME_CLOSE` (comments to a YAML reader)."""
    return FRAME_OPEN.format(kind=kind) + yaml.safe_dump(data, sort_keys=False) + FRAME_CLOSE.format(kind=kind)


def check_framed(path: Path, text: str) -> None:
    """:class:`DamagedFileError` when ``text`` opens as a framed file (:func:`framed_yaml`) and does not end
    with its closing line (trailing blanks aside): cut short, or edited below that line. Files without the
    opening line (written by hand, or before framing) pass."""
    text = text.removeprefix("\ufeff")  # a byte-order mark an editor added must not hide the frame
    first, newline, _ = text.partition("\n")
    first = first.rstrip()
    if not (newline and first.startswith(_OPEN_PREFIX) and first.endswith(_OPEN_SUFFIX)):
        return
    kind = first[len(_OPEN_PREFIX):len(first) - len(_OPEN_SUFFIX)]
    close = FRAME_CLOSE.format(kind=kind).rstrip()
    if text.rstrip().endswith(close):
        return
    if any(line.rstrip() == close for line in text.splitlines()):
        raise DamagedFileError(f"{path}: {kind} has text after its closing line '{close}'; put edits above that "
                               "line (or delete the first line to read it as plain YAML)")
    raise DamagedFileError(f"{path}: {kind} cut short (no closing line '{close}'); make it again with the "
                           "command that wrote it")


def read_yaml_mapping(path: Path, error: type[Exception], what: str) -> dict[str, Any]:
    """The mapping a YAML (or JSON) file holds, or ``error`` with one line: file missing, not YAML, cut
    short (a framed file without its closing line, :func:`check_framed`), or not a mapping (of ``what``,
    e.g. "config fields")."""
    if not path.is_file():
        raise error(f"{path}: file not found")
    try:
        text = path.read_text()
        check_framed(path, text)
        data = yaml.safe_load(text)
    except DamagedFileError as exc:
        raise error(str(exc)) from None
    except UnicodeDecodeError:
        raise error(f"{path}: not a text file (expected YAML or JSON)") from None
    except yaml.YAMLError as exc:
        raise error(f"{path}: not valid YAML/JSON ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise error(f"{path}: expected a mapping of {what}, got {type(data).__name__}")
    return data
