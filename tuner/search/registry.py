"""Ray Tune searchers over a :class:`~search_spaces.SearchSpace`, by name: Ax Bayesian optimisation
(:mod:`tuner.search.ax`), Optuna's TPE (:mod:`tuner.search.optuna`) and random search (here).

Every searcher suggests flat dotted overrides (``{"penalty": ..., "lam": ..., "rollout.horizon": ...}``,
fixed values included); Tune merges them into the ``param_space`` constants of each trial.
:func:`make_searcher` builds one of the kinds in :data:`SEARCHERS`. Ax is imported only when an Ax
searcher is built (or unpickled from a saved sweep): its import takes seconds.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ray.tune.search import ConcurrencyLimiter, Searcher

from search_spaces.space import SearchSpace
from tuner.search.base import Mode, WarmStartPoint, write_json_atomic
from tuner.search.optuna import SpaceOptunaSearch

_RANDOM_STATE_FORMAT = "mbrl-tune/random-searcher/1"


def __getattr__(name: str) -> Any:
    """``tuner.search.registry.AxSearcher``: the name the Tune states of sweeps saved before the Ax searcher moved
    to :mod:`tuner.search.ax` pickled it under; imported on first use."""
    if name == "AxSearcher":
        from tuner.search.ax import AxSearcher  # noqa: PLC0415  (Ax import is slow)

        return AxSearcher
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class RandomSearcher(Searcher):
    """Uniform random search over a space, after its unscored warm-start points.

    Scored warm-start points are ignored (random search learns nothing). Constraints are met by
    resampling (``SearchSpace.sample_random``). ``save``/``restore`` keep the RNG state, so a
    restored sweep continues the same random sequence; trials running at save time are left to Tune,
    which re-runs them itself.
    """

    def __init__(
        self,
        space: SearchSpace,
        metric: str,
        mode: Mode,
        *,
        seed: int = 0,
        warm_start: Sequence[WarmStartPoint] = (),
        max_concurrent: int = 1,
    ) -> None:
        super().__init__(metric=metric, mode=mode)
        self._space = space
        self._max_concurrent = max_concurrent
        self._rng = np.random.default_rng(seed)
        self._queue = [space.decode(space.encode(o)) for o, score in warm_start if score is None]
        self._live: set[str] = set()
        self.num_suggested = 0
        """How many configurations this searcher has handed to Tune."""

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        self._max_concurrent = max(1, max_concurrent)
        return True

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if len(self._live) >= self._max_concurrent:
            return None
        self._live.add(trial_id)
        self.num_suggested += 1
        return self._queue.pop(0) if self._queue else self._space.sample_random(self._rng)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        self._live.discard(trial_id)

    def save(self, checkpoint_path: str) -> None:
        state = {
            "format": _RANDOM_STATE_FORMAT,
            "rng": self._rng.bit_generator.state,
            "queue": self._queue,
            "num_suggested": self.num_suggested,
        }
        write_json_atomic(checkpoint_path, state)

    def restore(self, checkpoint_path: str) -> None:
        state = json.loads(Path(checkpoint_path).read_text())
        if state.get("format") != _RANDOM_STATE_FORMAT:
            raise ValueError(f"{checkpoint_path}: not a RandomSearcher state")
        self._rng.bit_generator.state = state["rng"]
        self._queue = state["queue"]
        self.num_suggested = state["num_suggested"]
        self._live.clear()


@dataclass(frozen=True)
class SearcherOptions:
    """What every searcher kind is built from, besides the space and the objective."""

    seed: int = 0
    """Seed of the searcher's own randomness (Sobol scrambling, random draws, Optuna's sampler)."""
    num_init_trials: int = 8
    """Space-filling trials before model-based proposals (Ax's Sobol design, Optuna's start-up trials)."""
    warm_start: Sequence[WarmStartPoint] = ()
    """Scored points from earlier sweeps on the same data, fed to the searcher before it proposes."""
    max_concurrent: int = 1
    """Trials proposed but not yet finished at any time."""


def _make_ax(space: SearchSpace, metric: str, mode: Mode, o: SearcherOptions) -> Searcher:
    from tuner.search.ax import AxSearcher  # noqa: PLC0415  (Ax import is slow)

    return AxSearcher(space, metric, mode, num_init_trials=o.num_init_trials, seed=o.seed,
                      warm_start=o.warm_start, max_concurrent=o.max_concurrent)


def _make_random(space: SearchSpace, metric: str, mode: Mode, o: SearcherOptions) -> Searcher:
    return RandomSearcher(space, metric, mode, seed=o.seed, warm_start=o.warm_start,
                          max_concurrent=o.max_concurrent)


def _make_optuna(space: SearchSpace, metric: str, mode: Mode, o: SearcherOptions) -> Searcher:
    searcher = SpaceOptunaSearch(space, metric, mode, seed=o.seed, num_init_trials=o.num_init_trials,
                                  warm_start=o.warm_start)
    return ConcurrencyLimiter(searcher, max_concurrent=o.max_concurrent)


SEARCHERS: dict[str, Callable[[SearchSpace, str, Mode, SearcherOptions], Searcher]] = {
    "ax": _make_ax, "random": _make_random, "optuna": _make_optuna}
"""Searcher kinds by name (the same names as ``tuner.store.spec.SEARCHER_KINDS``, which a stored spec is
checked against without importing Ray; a test keeps the two equal)."""


def make_searcher(kind: str, space: SearchSpace, metric: str, mode: Mode, *, seed: int = 0,
                  num_init_trials: int = 8, warm_start: Sequence[WarmStartPoint] = (),
                  max_concurrent: int = 1) -> Searcher:
    """Build a searcher of one of the kinds in :data:`SEARCHERS` (``ax``, ``random``, ``optuna``)."""
    try:
        builder = SEARCHERS[kind]
    except KeyError:
        raise ValueError(f"unknown searcher kind {kind!r} (known: {', '.join(SEARCHERS)})") from None
    return builder(space, metric, mode, SearcherOptions(seed, num_init_trials, warm_start, max_concurrent))
