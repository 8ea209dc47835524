"""Published hand-tuned MOPO settings per D4RL dataset, as trial-config overrides.

Source: ``trials/data/hand_tuned_baselines.yaml``, a copy of ../shared/reference/hand_tuned_baselines.yaml:
``mopo_official`` from tianheyu927/mopo ``examples/config/d4rl/*.py`` (shared settings in ``base.py``: 7
models, 5 elites, real_ratio 0.05, rollout batch 50,000, model_retain_epochs 5); ``offlinerl_kit`` from
yihaosun1124/OfflineRL-Kit ``run_example/run_mopo.py``. The penalty is MOPO's max-aleatoric in every row.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import yaml

#: Settings MOPO's base config shares across datasets (the rows only give h and lambda).
MOPO_SHARED: dict[str, Any] = {"penalty": "max_aleatoric", "num_models": 7, "num_elites": 5, "real_ratio": 0.05}


@cache
def _table() -> dict[str, dict[str, dict[str, float]]]:
    text = resources.files("trials").joinpath("data/hand_tuned_baselines.yaml").read_text()
    return yaml.safe_load(text)


def baseline_sources() -> list[str]:
    return list(_table())


def hand_tuned(source: str, dataset: str) -> dict[str, Any]:
    """Overrides for ``dataset`` (``<env>-<level>``, e.g. ``hopper-medium``) from ``source``; a ValueError
    names the known sources or datasets otherwise."""
    table = _table()
    if source not in table:
        raise ValueError(f"unknown baseline source '{source}'; known: {', '.join(table)}")
    rows = table[source]
    if dataset not in rows:
        raise ValueError(f"baseline '{source}' has no setting for '{dataset}'; it has: {', '.join(rows)}")
    row = rows[dataset]
    return {**MOPO_SHARED, "lam": float(row["lambda"]), "rollout.horizon": int(row["h"])}
