"""The Tune config of one trial, typed: what a sweep, a comparison or a confirmation hands Ray Tune, and
what the trainable and the sweep-folder reader decode (Ray- and torch-free).

Tune passes each trial one flat dict: ``{"base": <full TrialConfig dict>, "seeds": [0, 1], "threads": 1,
<dotted key>: value, ...}``; the dotted keys are the searcher's suggestion and override the base.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from trials.config import TrialConfig, apply_overrides

BASE, SEEDS, THREADS = "base", "seeds", "threads"
#: Keys of a Tune config that are not trial-config overrides.
RESERVED_KEYS = (BASE, SEEDS, THREADS)


def tune_space(base: Any, seeds: list[int] | None = None, threads: int = 1) -> dict[str, Any]:
    """The constant part of an experiment's Tune config: the base config (a dict, or a Tune grid over
    several), the seeds each trial runs in lockstep (None: each base config's own seed) and torch threads."""
    return {BASE: base, THREADS: threads, **({SEEDS: list(seeds)} if seeds else {})}


@dataclass(frozen=True)
class TuneParams:
    """One trial's Tune config, split into its parts."""

    base: dict[str, Any]
    """The full trial config the searched values override."""
    overrides: dict[str, Any] = field(default_factory=dict)
    """The searcher's suggestion: dotted trial-config keys and their values."""
    seeds: list[int] = field(default_factory=list)
    """Seeds run in lockstep; empty: the trial config's one seed."""
    threads: int = 1
    """Torch threads of the trial's process."""

    @classmethod
    def from_tune(cls, config: Mapping[str, Any]) -> TuneParams:
        base = config.get(BASE)
        return cls(base=dict(base) if isinstance(base, Mapping) else {}, overrides=searched(config),
                   seeds=[int(s) for s in config.get(SEEDS) or []], threads=int(config.get(THREADS) or 1))

    def config_dict(self) -> dict[str, Any]:
        """The trial config as a plain dict (base with the overrides), not validated."""
        return apply_overrides(self.base, self.overrides)

    def trial_config(self, source: str = "trial config") -> TrialConfig:
        """The validated trial config (its ``seed`` is the base's; :attr:`run_seeds` are the seeds run)."""
        return TrialConfig.from_dict(self.config_dict(), source)

    @property
    def run_seeds(self) -> list[int]:
        """The seeds the trial runs: :attr:`seeds`, or the trial config's one seed."""
        return self.seeds or [int(self.config_dict().get("seed", 0))]


def searched(config: Mapping[str, Any]) -> dict[str, Any]:
    """The searcher's part of a Tune config: every key that is not reserved."""
    return {k: v for k, v in config.items() if k not in RESERVED_KEYS}
