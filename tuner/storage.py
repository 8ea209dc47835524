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

import os
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs


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
