"""What every searcher shares (the registry in :mod:`tuner.search.registry`, the Ax searcher in
:mod:`tuner.search.ax`): the optimisation direction, warm-start points, and how a searcher writes its
state. Both import this; neither imports the other at module level."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from trials.files import atomic_write_text

Mode = Literal["max", "min"]
WarmStartPoint = tuple[Mapping[str, Any], float | None]
"""Flat dotted overrides and their score, or None for a point still to be evaluated."""


def write_json_atomic(path: str | os.PathLike[str], payload: Mapping[str, Any]) -> None:
    """JSON to ``path``, complete or absent (a searcher state Tune renames into place)."""
    atomic_write_text(Path(path), json.dumps(payload))
