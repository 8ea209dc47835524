"""Writing a results table without ever replacing a stored one by a table that holds less.

A table is rebuilt from the runs found on disk each time a command tabulates (``compare --no-run``, a
study's stage, a report). When fewer runs are found than the stored table counts for the same
configurations (a moved or partly copied folder, a file gone missing), the stored table is kept as it is
and one line says so: a committed 3-vs-3 comparison must not turn into 0-vs-0."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from trials.files import atomic_write_text

#: Per dataset row: (what makes it the same table, how many finished runs it counts).
RowMeasure = Callable[[dict[str, Any]], tuple[str, int]]


def fewer_than_stored(stored_path: Path, rows: list[dict[str, Any]], measure: RowMeasure,
                      stored_rows: Callable[[Any], list[dict[str, Any]]]) -> str | None:
    """Why ``rows`` must not replace the table in ``stored_path`` (a dataset whose same configurations
    count fewer finished runs now than stored), or None when they may."""
    if not stored_path.is_file():
        return None
    try:
        stored = {measure(r)[0]: measure(r)[1] for r in stored_rows(json.loads(stored_path.read_text()))}
    except (UnicodeDecodeError, ValueError, KeyError, TypeError):
        print(f"note: {stored_path}: damaged; rebuilt from the runs", file=sys.stderr)
        return None  # a derived file: the table rebuilt now replaces it
    for row in rows:
        identity, count = measure(row)
        if identity in stored and count < stored[identity]:
            return (f"{stored_path}: holds {stored[identity]} finished runs for {row.get('dataset', identity)}, "
                    f"only {count} found now (a moved or partly copied folder, or missing files?); the stored "
                    f"table is kept as it is")
    return None


def write_table(path_json: Path, path_csv: Path, payload: Any, csv_text: str, rows: list[dict[str, Any]],
                measure: RowMeasure, stored_rows: Callable[[Any], list[dict[str, Any]]]) -> bool:
    """Write the JSON and CSV twins unless :func:`fewer_than_stored` objects; then print why on stderr and
    return False."""
    why = fewer_than_stored(path_json, rows, measure, stored_rows)
    if why is not None:
        print(f"note: {why}", file=sys.stderr)
        return False
    atomic_write_text(path_csv, csv_text)
    atomic_write_text(path_json, json.dumps(payload, indent=2, default=str))
    return True
