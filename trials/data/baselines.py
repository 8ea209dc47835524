"""Published hand-tuned settings per D4RL dataset, as trial-config overrides.

Source: ``trials/data/hand_tuned_baselines.yaml`` (citations there and in ``docs/reference.md``). Each
source has ``settings`` shared by all its datasets (the algorithm as that code base runs it, its SAC
included: MOPO's official code uses target entropy -3 for every env, OfflineRL-Kit a cosine-decayed actor
learning rate) and a row per dataset with the rollout horizon ``h``, the penalty weight ``lambda`` and
optionally ``set``, further overrides of that row (MOBILE's fixed temperature on hopper-medium). A source
whose setting is the same everywhere (RAVL's code defaults) gives a ``default_row`` instead.
A baseline is compared as its source ran it, so :func:`hand_tuned` returns both.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import yaml


@cache
def _table() -> dict[str, dict[str, Any]]:
    text = resources.files("trials").joinpath("data/hand_tuned_baselines.yaml").read_text()
    return yaml.safe_load(text)


def baseline_sources() -> list[str]:
    return list(_table())


def _source(source: str) -> dict[str, Any]:
    table = _table()
    if source not in table:
        raise ValueError(f"unknown baseline source '{source}'; known: {', '.join(table)}")
    return table[source]


def source_settings(source: str) -> dict[str, Any]:
    """The overrides ``source`` shares across its datasets (penalty, ensemble, real ratio, SAC)."""
    return dict(_source(source)["settings"])


def agent_settings(source: str) -> dict[str, Any]:
    """The part of :func:`source_settings` that configures the agent (``sac.*``): what a sweep's base
    takes from its baseline source, so that the baseline trial runs exactly as published."""
    return {k: v for k, v in source_settings(source).items() if k.startswith("sac.")}


def hand_tuned(source: str, dataset: str) -> dict[str, Any]:
    """Overrides for ``dataset`` (``<env>-<level>``, e.g. ``hopper-medium``) from ``source``; a ValueError
    names the known sources or datasets otherwise."""
    entry = _source(source)
    rows = entry["datasets"]
    row = rows.get(dataset, entry.get("default_row"))
    if row is None:
        raise ValueError(f"baseline '{source}' has no setting for '{dataset}'; it has: {', '.join(rows)}")
    return {**source_settings(source), "lam": float(row["lambda"]), "rollout.horizon": int(row["h"]),
            **row.get("set", {})}
