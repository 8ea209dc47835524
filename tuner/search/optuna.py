"""Optuna's TPE as a Ray Tune searcher over a :class:`~search_spaces.SearchSpace`: Ray's ``OptunaSearch``
over the space's define-by-run function (:meth:`SearchSpace.optuna_space`, which asks any trial with
Optuna's ``suggest_*`` methods), with the space's distributions in Optuna's terms for scored warm-start
points."""

from __future__ import annotations

import math
from collections.abc import Sequence

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from ray.tune.search.optuna import OptunaSearch

from search_spaces.space import ChoiceParameter, SearchSpace
from tuner.search.base import Mode, WarmStartPoint


def optuna_distributions(space: SearchSpace) -> dict[str, BaseDistribution]:
    """Optuna distributions by optimizer name, matching :meth:`SearchSpace.optuna_space` (to add scored points)."""
    distributions: dict[str, BaseDistribution] = {}
    for param, _, _ in space.iter_parameters():
        if isinstance(param, ChoiceParameter):
            distributions[param.name] = CategoricalDistribution(list(param.values))
        elif param.kind == "int":
            distributions[param.name] = IntDistribution(int(param.low), int(param.high), log=param.log)
        else:
            distributions[param.name] = FloatDistribution(param.low, param.high, log=param.log)
    return distributions


class SpaceOptunaSearch(OptunaSearch):
    """Ray's OptunaSearch over ``SearchSpace.optuna_space``, suggesting only the space's override keys."""

    def __init__(
        self,
        space: SearchSpace,
        metric: str,
        mode: Mode,
        *,
        seed: int,
        num_init_trials: int,
        warm_start: Sequence[WarmStartPoint],
    ) -> None:
        unscored = [space.encode(o) for o, score in warm_start if score is None]
        # TPE's random start-up phase plays the role of Ax's initial design, so give it the same size.
        sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=num_init_trials)
        super().__init__(
            space=space.optuna_space,
            metric=metric,
            mode=mode,
            points_to_evaluate=unscored or None,
            sampler=sampler,
        )
        self._override_keys = frozenset(space.keys)
        # Ray refuses `evaluated_rewards` with a define-by-run space, so add scored points to the study
        # directly, with the distributions optuna_space uses.
        distributions = optuna_distributions(space)
        for overrides, score in warm_start:
            if score is None or not math.isfinite(score):
                continue
            params = space.encode(overrides)
            trial = optuna.trial.create_trial(
                params=params, distributions={n: distributions[n] for n in params}, value=score
            )
            self._ot_study.add_trial(trial)

    def suggest(self, trial_id: str) -> dict | None:
        config = super().suggest(trial_id)
        # Ray merges Optuna's raw suggestions (``lam__max_aleatoric``) into the returned dict.
        return {k: v for k, v in config.items() if k in self._override_keys} if config else config

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        # An offline objective is in a trial's last report only: earlier reports carry no intermediate value.
        if self.metric in result:
            super().on_trial_result(trial_id, result)
