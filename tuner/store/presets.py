"""Built-in base trial configs (budgets) and search spaces, resolvable by name from the CLI."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from tuner.errors import UsageError

#: Preset name -> what it is for.
PRESETS = {
    "tiny": "smallest sensible budget, for tests and smoke runs",
    "demo": "MOPO at a 2-core laptop budget (the demo and quick sweeps)",
    "full": "MOPO's published scale: 1,000 epochs of 1,000 updates",
}


def load_preset(name: str) -> dict[str, Any]:
    """The base trial config (without dataset) of preset ``name``."""
    if name not in PRESETS:
        raise UsageError(f"unknown preset '{name}'; known: {', '.join(PRESETS)}")
    return yaml.safe_load(resources.files("tuner").joinpath(f"data/{name}.yaml").read_text())


def resolve_space(name_or_path: str) -> str:
    """A search-space path: a file as given, or a built-in space name (``quick``, ``paper``)."""
    if Path(name_or_path).is_file():
        return name_or_path
    builtin = resources.files("search_spaces").joinpath(f"{name_or_path}.yaml")
    if builtin.is_file():
        return str(builtin)
    raise UsageError(f"--space {name_or_path}: no such file, and not a built-in space (quick, paper)")
