"""Published hand-tuned settings per D4RL dataset, as trial-config overrides.

Source: ``trials/data/hand_tuned_baselines.yaml`` (citations there and in ``docs/reference.md``). Each
source has ``settings`` shared by all its datasets (the algorithm as that code base runs it, its SAC
included: MOPO's official code uses target entropy -3 for every env, OfflineRL-Kit a cosine-decayed actor
learning rate) and a row per dataset with the rollout horizon ``h`` and the penalty weight ``lambda``.
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
    rows = _source(source)["datasets"]
    if dataset not in rows:
        raise ValueError(f"baseline '{source}' has no setting for '{dataset}'; it has: {', '.join(rows)}")
    row = rows[dataset]
    return {**source_settings(source), "lam": float(row["lambda"]), "rollout.horizon": int(row["h"])}
