"""The filesystem Ray Tune writes a sweep's files through: the local one, with every file written whole
or not at all.

Ray Tune keeps a trial's ``result.json`` and ``params.json`` (and the experiment's state files) in a
staging folder on the driver and copies the whole folder onto the sweep's storage every few seconds,
rewriting each file in place. On a full filesystem a rewrite that truncated a file and then could not
write it back leaves it cut short or empty, finished trials included: a sweep that hit a full disk lost
the results of trials that had finished long before (``read_trials`` found none of them). Through
:func:`whole_file_fs` every file Tune writes goes to a temporary name beside it and is renamed over the
old one only once it was written in full, so a failed write leaves the previous copy as it was.
"""

from __future__ import annotations

import contextlib
import errno
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs

from trials.files import FULL_BELOW
from tuner.errors import StorageFullError, UsageError


class _WholeFile:
    """A binary file written under a temporary name and renamed to ``path`` when closed after writes
    that all succeeded; otherwise the temporary file is removed and ``path`` is left untouched."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.tmp = str(Path(path).with_name(f".{Path(path).name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"))
        self._file = open(self.tmp, "wb")  # noqa: SIM115  (closed in close())
        self._failed = False
        self.closed = False

    def write(self, data: Any) -> int:
        try:
            return self._file.write(data)
        except BaseException:
            self._failed = True
            raise

    def flush(self) -> None:
        try:
            self._file.flush()
        except BaseException:
            self._failed = True
            raise

    def tell(self) -> int:
        return self._file.tell()

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self._file.close()  # flushes: a full disk can fail here too
        except BaseException:
            self._failed = True
            raise
        finally:
            if self._failed:  # a write failed: the old file stays as it was
                Path(self.tmp).unlink(missing_ok=True)
        if not self._failed:
            os.replace(self.tmp, self.path)

    def __del__(self) -> None:  # abandoned after a failed write: never leave the temporary file behind
        if not self.closed:
            self._failed = True
            try:
                self.close()
            except Exception:  # noqa: BLE001  (a finaliser must not raise, even at interpreter exit)
                pass


class WholeFileLocalHandler(pafs.FileSystemHandler):
    """pyarrow filesystem handler: the local filesystem, with output streams and copies that replace
    their target only once written in full. Everything else is the local filesystem's own."""

    def __init__(self) -> None:
        self.local = pafs.LocalFileSystem()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WholeFileLocalHandler)

    def __ne__(self, other: object) -> bool:
        return not isinstance(other, WholeFileLocalHandler)

    def __hash__(self) -> int:
        return hash(WholeFileLocalHandler)

    def __reduce__(self) -> tuple[type, tuple]:  # to worker nodes: a fresh local filesystem there
        return (WholeFileLocalHandler, ())

    def get_type_name(self) -> str:
        return "whole-file-local"

    def normalize_path(self, path: str) -> str:
        return self.local.normalize_path(path)

    def get_file_info(self, paths: list[str]) -> list[pafs.FileInfo]:
        return self.local.get_file_info(paths)

    def get_file_info_selector(self, selector: pafs.FileSelector) -> list[pafs.FileInfo]:
        return self.local.get_file_info(selector)

    def create_dir(self, path: str, recursive: bool) -> None:
        self.local.create_dir(path, recursive=recursive)

    def delete_dir(self, path: str) -> None:
        self.local.delete_dir(path)

    def delete_dir_contents(self, path: str, missing_dir_ok: bool = False) -> None:
        self.local.delete_dir_contents(path, missing_dir_ok=missing_dir_ok)

    def delete_root_dir_contents(self) -> None:
        raise OSError("refusing to delete the contents of the root directory")

    def delete_file(self, path: str) -> None:
        self.local.delete_file(path)

    def move(self, src: str, dest: str) -> None:
        self.local.move(src, dest)

    def copy_file(self, src: str, dest: str) -> None:
        with self.local.open_input_stream(src) as source, self.open_output_stream(dest, None) as target:
            while chunk := source.read(1 << 20):
                target.write(chunk)

    def open_input_stream(self, path: str) -> pa.NativeFile:
        return self.local.open_input_stream(path)

    def open_input_file(self, path: str) -> pa.NativeFile:
        return self.local.open_input_file(path)

    def open_output_stream(self, path: str, metadata: dict | None) -> pa.NativeFile:
        return pa.PythonFile(_WholeFile(path), mode="w")

    def open_append_stream(self, path: str, metadata: dict | None) -> pa.NativeFile:
        return self.local.open_append_stream(path)


def whole_file_fs() -> pafs.FileSystem:
    """The filesystem to give Ray Tune (``RunConfig.storage_filesystem``, ``Tuner.restore``) for a sweep on
    a local or mounted path: paths are the local ones, unchanged."""
    return pafs.PyFileSystem(WholeFileLocalHandler())


def _chain(exc: BaseException | str) -> Iterator[BaseException | str]:
    """``exc`` and the exceptions it wraps (a text is its own chain)."""
    seen: BaseException | str | None = exc
    while seen is not None:
        yield seen
        seen = (seen.__cause__ or seen.__context__) if isinstance(seen, BaseException) else None


def disk_full(exc: BaseException | str) -> bool:
    """Whether ``exc`` (or an exception it wraps; Ray's carry the cause only as text) is ENOSPC."""
    return any((isinstance(e, OSError) and e.errno == errno.ENOSPC) or "No space left on device" in str(e)
               or "[Errno 28]" in str(e) for e in _chain(exc))


def raise_if_disk_full(result: Any, where: Path) -> None:
    """After a Tune run: a trial that failed on a full filesystem ends the command (the CLI turns it into
    one line naming the filesystem and the command that continues, exit 1), instead of a summary that
    counts such trials as missing (Tune could not write their error files onto the full storage)."""
    for error in getattr(result, "errors", None) or []:
        if disk_full(error):
            raise OSError(errno.ENOSPC, f"a trial failed on a full filesystem under {where}")


def trial_failure(trial: Any) -> str:
    """Where a failed trial's folder is in the sweep (not Ray's staging folder), and why it failed when
    that was a full filesystem, for a progress line."""
    text = ""
    try:
        text = Path(trial.error_file).read_text() if trial.error_file else ""
    except OSError:
        pass
    why = " (no space left on device)" if disk_full(text) else ""
    return f"{trial.path or trial.local_path}{why}"


def storage_full(path: Path) -> bool:
    """Whether the filesystem holding ``path`` has under ``trials.files.FULL_BELOW`` bytes free now (the
    rule the atomic writer uses)."""
    return free_bytes(path) < FULL_BELOW


def free_bytes(path: Path) -> int:
    """Bytes available to this user on the filesystem holding ``path`` (or its nearest existing parent)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


@contextlib.contextmanager
def storage_guard(storage: Path, resume_hint: str) -> Iterator[None]:
    """Turn a failure on a full ``storage`` filesystem into one line (:class:`StorageFullError`). A full
    disk surfaces in many forms (ENOSPC, or Ray Tune failing to read back a file it could not write), so
    any error while the filesystem has under 1 MiB free counts."""
    try:
        yield
    except (UsageError, KeyboardInterrupt):
        raise
    except Exception as exc:
        if disk_full(exc) or storage_full(storage):
            raise StorageFullError(f"the filesystem of {storage} is full (no space left on device); free space "
                                   f"there, then run: {resume_hint}") from None
        raise


def full_filesystem_line(exc: BaseException, command: str) -> str | None:
    """For a command that ended on a full filesystem outside a sweep's storage (a pool, a report, a dataset
    being written): one line naming where it could not write and what to do; None for other errors."""
    if not disk_full(exc):
        return None
    where = next((e.filename for e in _chain(exc) if getattr(e, "filename", None)), None)
    place = f"the filesystem of {Path(where).parent}" if where else "a filesystem this command writes to"
    return f"{place} is full (no space left on device); free space there, then run: {command}"
