"""Ax Bayesian optimisation as a Ray Tune searcher over a :class:`~search_spaces.SearchSpace`.

:class:`AxSearcher` wraps ``ax.api.Client`` because Ray's bundled ``AxSearch`` fails with Ax 1.3
(see ``docs/design.md``). Its rules:

Proposals
    Warm-start points without a score (hand-tuned baselines) are attached to Ax first and handed out
    before anything Ax proposes, in the order given. Points with a score are attached and completed
    at once, so they count toward the initial design and inform the model. ``num_init_trials`` is
    the size of the initial (Sobol) design *including* warm-start points; Ax moves to BoTorch once
    that many trials exist and half of them have data. When the queue is empty the searcher asks
    Ax for as many trials as there are free slots (``max_concurrent`` minus running trials, capped
    by Tune's remaining ``num_samples``) in one ``get_next_trials`` call and queues the surplus: one
    joint batch is as cheap as one proposal and spreads its points apart. When all slots are busy,
    or Ax waits for data before leaving its initial design, ``suggest`` returns None and Tune asks
    again later; when Ax has nothing left to propose it returns ``Searcher.FINISHED``.

Results (``on_trial_complete``)
    - ``error=True`` (the trial raised) -> ``mark_trial_failed``: Ax may propose the point again.
    - no result at all (Tune stopped a trial before its first report) -> ``mark_trial_abandoned``;
      if that trial reports later (Tune re-runs it after a restore) the result is attached to Ax as a
      new trial with the same parameters.
    - no metric in the result, or a non-finite or non-numeric score -> ``mark_trial_failed``.
    - otherwise ``complete_trial`` with the score. That includes ``status == "diverged"``: the
      trainable reports a finite, pessimistic score for diverged runs, which tells the model the
      region is bad, whereas a failure would tell it nothing.

Save and restore
    ``save`` writes ONE JSON file (Tune renames exactly the path it passes to ``save``): the Ax
    client snapshot (``Client.save_to_json_file``) plus the searcher's own state, written to a
    temporary name and moved into place with ``os.replace``. ``restore`` reloads the Ax experiment
    and generation strategy, so Sobol continues its sequence and BoTorch keeps all data; it does
    not restart the design. Proposals queued but not yet handed to Tune are handed out first, as
    they would have been. Trials handed to Tune but without a result at save time are marked
    ABANDONED in Ax and forgotten by the concurrency count: Tune re-runs unfinished trials itself
    (same trial id, or a new id with the same config under ``ResumeConfig`` RESTART) without
    asking the searcher, and when one reports, its score is attached to Ax as a new trial with the
    same parameters. Waiting for them instead could block the sweep forever if Tune skips them.
    After a restore, Tune may therefore briefly run more than ``max_concurrent`` trials.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from ax.adapter.transforms import int_to_float as _int_to_float
from ax.api.client import Client
from ax.api.configs import ChoiceParameterConfig, RangeParameterConfig
from ax.exceptions.core import DataRequiredError, OptimizationComplete
from ax.exceptions.generation_strategy import MaxParallelismReachedException
from ray.tune.search import Searcher

from search_spaces.space import RangeParameter, SearchSpace
from tuner.search.base import Mode, WarmStartPoint, write_json_atomic


# ---------------------------------------------------------------- the space in Ax's terms
def ax_parameters(space: SearchSpace) -> list[RangeParameterConfig | ChoiceParameterConfig]:
    """Ax parameter configs of a space, branch parameters named ``<key>__<value>`` and wired as dependents."""
    configs: list[RangeParameterConfig | ChoiceParameterConfig] = []
    for param, _, _ in space.iter_parameters():
        if isinstance(param, RangeParameter):
            bounds = (int(param.low), int(param.high)) if param.kind == "int" else (param.low, param.high)
            configs.append(RangeParameterConfig(name=param.name, bounds=bounds, parameter_type=param.kind,
                                                scaling="log" if param.log else "linear"))
        else:
            dependents = {value: [child.name for child in branch] for value, branch in param.depends.items()}
            configs.append(ChoiceParameterConfig(name=param.name, values=list(param.values),  # type: ignore[arg-type]
                                                 parameter_type=param.value_type, is_ordered=param.ordered,
                                                 dependent_parameters=dependents or None))
    return configs


def ax_constraints(space: SearchSpace) -> list[str]:
    """A space's constraints in Ax's ``parameter_constraints`` syntax (fixed-only ones were checked at load)."""
    return [f"{c.lower} <= {c.upper}" for c in space.constraints]


logger = logging.getLogger(__name__)

_STATE_FORMAT = "mbrl-tune/ax-searcher/1"


def _client_to_json(client: Client) -> dict[str, Any]:
    """The client's JSON snapshot, through Ax's public file API."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "ax_client.json")
        client.save_to_json_file(path)
        return json.loads(Path(path).read_text())


def _client_from_json(snapshot: Mapping[str, Any], seed: int) -> Client:
    """A client reloaded from a snapshot, through Ax's public file API."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "ax_client.json")
        Path(path).write_text(json.dumps(snapshot))
        client = Client.load_from_json_file(path)
    # Ax 1.3.1's snapshot drops the client's random seed (the reloaded `_random_seed` is None) and
    # offers no setter; without it BoTorch proposals after a restore would not be reproducible.
    client._random_seed = seed
    return client


@contextlib.contextmanager
def _torch_threads(num_threads: int) -> Iterator[None]:
    """Limit torch's intra-op threads for the duration (0 or less: leave as is).

    On this 2-core machine with one core busy elsewhere, BoTorch's default 2 threads took 10-54 s per
    proposal on paper.yaml instead of 4.3 s with 1 thread (quick.yaml: 1.4-3.0 s instead of 0.4-0.8 s):
    the threads wait for each other. Trials run in other processes, so the driver loses nothing.
    """
    if num_threads <= 0:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _round_in_name_order(parameters: Mapping[str, Any], transform_parameters: Iterable[str]) -> dict[str, Any]:
    """Ax's ``randomized_round_parameters`` with the parameters taken in sorted order.

    Ax 1.3.1 rounds integer parameters at random when a constraint involves them (``IntToFloat`` switches to
    ``randomized_round``; in the paper space ``num_elites <= num_models`` does). Its draws are seeded (the
    client's ``random_seed``), but it hands them out while iterating a ``set`` of names, whose order follows
    Python's per-process string hashing: the same seed's Sobol design gave horizons ``[20, 1, 11, 50, 3, 13,
    32, 2]`` in one process and ``[20, 1, 11, 49, 4, 13, 32, 1]`` in another (the evidence study and a later
    sweep of the same space and seed differed so). Sorted, the same draw goes to the same parameter in every
    process.
    """
    return _ax_randomized_round_parameters(parameters, sorted(transform_parameters))


_ax_randomized_round_parameters = _int_to_float.randomized_round_parameters
_int_to_float.randomized_round_parameters = _round_in_name_order


def _score(result: Mapping[str, Any] | None, metric: str, error: bool) -> tuple[str, float | str]:
    """Apply the result rules of the module docstring: ("complete", score) or (Ax status, reason)."""
    if error:
        return "failed", "the trial raised an error in Ray Tune"
    if result is None:
        return "abandoned", "Tune stopped the trial before it reported"
    if metric not in result:
        return "failed", f"the result has no '{metric}'"
    value = result[metric]
    try:
        score = float(value)
    except (TypeError, ValueError):
        return "failed", f"non-numeric score {value!r}"
    if not math.isfinite(score):
        return "failed", f"non-finite score {score}"
    return "complete", score


def _config_overrides(result: Mapping[str, Any] | None, keys: Sequence[str]) -> dict[str, Any]:
    """The space's keys from a result's config (Tune flattens results: ``config/rollout.horizon``)."""
    if not result:
        return {}
    nested = result.get("config")
    if isinstance(nested, Mapping):
        return {k: nested[k] for k in keys if k in nested}
    return {k: result[f"config/{k}"] for k in keys if f"config/{k}" in result}


class AxSearcher(Searcher):
    """Bayesian optimisation with ``ax.api.Client`` as a Ray Tune searcher (rules in the module docstring)."""

    def __init__(
        self,
        space: SearchSpace,
        metric: str,
        mode: Mode,
        *,
        num_init_trials: int = 8,
        seed: int = 0,
        warm_start: Sequence[WarmStartPoint] = (),
        max_concurrent: int = 1,
        proposal_threads: int = 1,
    ) -> None:
        """
        Args:
            space: the search space; suggestions are its flat dotted overrides.
            metric: the result key to optimise.
            mode: ``max`` or ``min``.
            num_init_trials: size of the initial Sobol design, warm-start points included. Give each
                category a few trials: BO can lock onto one category when it has seen too few.
            seed: seeds Ax (Sobol and BoTorch), so a sweep is reproducible.
            warm_start: points to start from; see :data:`WarmStartPoint` and the module docstring.
                Points must lie in the space (``SearchSpace.encode`` rejects the others; use
                ``SearchSpace.project`` for unscored baselines from a wider space).
            max_concurrent: how many trials may run at once; also the largest proposal batch.
            proposal_threads: torch threads while Ax proposes (0 leaves torch's setting alone).
        """
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        if num_init_trials < 1 or max_concurrent < 1:
            raise ValueError(
                f"num_init_trials and max_concurrent must be >= 1, got {num_init_trials} and {max_concurrent}"
            )
        super().__init__(metric=metric, mode=mode)
        self._space = space
        self._num_init_trials = num_init_trials
        self._seed = seed
        self._max_concurrent = max_concurrent
        self._proposal_threads = proposal_threads
        # Validate warm-start points now: a bad baseline should fail before Ray starts, not mid-sweep.
        self._warm_start = [(space.encode(overrides), score) for overrides, score in warm_start]
        # Ax parses the objective as an expression, so keep its metric name to a plain dotted identifier.
        self._ax_metric = "".join(c if c.isalnum() or c in "_." else "_" for c in metric)

        self._client: Client | None = None  # created on first use, or by restore
        self._queue: list[tuple[int, dict[str, Any]]] = []  # (ax index, ax params) not yet handed out
        self._live: dict[str, tuple[int, dict[str, Any]]] = {}  # trial id -> (ax index, ax params) running
        self._trial_index: dict[str, int] = {}  # every Tune trial id ever matched to an ax index
        self._detached: dict[str, dict[str, Any]] = {}  # abandoned without data; params for late results
        self._num_samples: int | None = None  # Tune's num_samples, when Tune tells us
        self._num_suggested = 0  # configurations handed to Tune, across restores
        self.proposal_times: list[float] = []
        """Seconds spent in each ``get_next_trials`` call, in order."""

    # ------------------------------------------------------------------ Tune hooks

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        """Record Tune's ``num_samples`` (to size the last batch); the space stays the YAML one."""
        if (metric and metric != self._metric) or (mode and mode != self._mode):
            raise ValueError(
                f"AxSearcher optimises {self._metric!r} ({self._mode}); Tune asked for {metric!r} ({mode})"
            )
        num_samples = spec.get("num_samples")
        if isinstance(num_samples, int) and num_samples > 0:
            self._num_samples = num_samples
        # False: we did not take Tune's config as a search space. Tune then only checks that the
        # param_space holds constants, which it merges into every suggestion.
        return False

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        """Called by ``ConcurrencyLimiter``: the limit is enforced here, batches sized by it."""
        self._max_concurrent = max(1, max_concurrent)
        return True

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        """The next configuration as flat dotted overrides; None to wait; FINISHED when Ax is done."""
        client = self._ensure_client()
        if len(self._live) >= self._max_concurrent:
            return None
        if not self._queue:
            status = self._propose(client)
            if status is not None:
                return status
        index, params = self._queue.pop(0)
        self._live[trial_id] = (index, params)
        self._trial_index[trial_id] = index
        self._num_suggested += 1
        return self._space.decode(params)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        """Report a finished trial to Ax, following the result rules of the module docstring."""
        client = self._ensure_client()
        outcome, value = _score(result, self._metric, error)
        if trial_id in self._live:
            index, params = self._live.pop(trial_id)
        else:
            late = self._attach_late_result(client, trial_id, result, outcome)
            if late is None:
                return
            index, params = late
        if outcome == "complete":
            client.complete_trial(index, raw_data={self._ax_metric: float(value)})
        elif outcome == "failed":
            client.mark_trial_failed(index, failed_reason=str(value))
        else:
            client.mark_trial_abandoned(index)
            self._detached[trial_id] = params
        if outcome != "complete":
            logger.info("Trial %s (Ax trial %d) marked %s: %s", trial_id, index, outcome, value)

    # ------------------------------------------------------------------ save and restore

    def save(self, checkpoint_path: str) -> None:
        """Write the Ax client and the searcher's state to one JSON file, atomically."""
        write_json_atomic(checkpoint_path, self.get_state())

    def restore(self, checkpoint_path: str) -> None:
        """Continue the optimisation saved by :meth:`save` (resume rule in the module docstring)."""
        self.set_state(json.loads(Path(checkpoint_path).read_text()))
        client = self._ensure_client()
        for trial_id, (index, params) in self._live.items():
            client.mark_trial_abandoned(index)
            self._detached[trial_id] = params
        self._live.clear()

    def get_state(self) -> dict[str, Any]:
        """The whole state as JSON-compatible data."""
        return {
            "format": _STATE_FORMAT,
            "metric": self._metric,
            "mode": self._mode,
            "seed": self._seed,
            "num_init_trials": self._num_init_trials,
            "space": {"name": self._space.name, "parameters": self._ax_names()},
            "ax_client": _client_to_json(self._client) if self._client is not None else None,
            "warm_start": [[params, score] for params, score in self._warm_start],
            "queue": [[index, params] for index, params in self._queue],
            "live": {trial_id: [index, params] for trial_id, (index, params) in self._live.items()},
            "trial_index": self._trial_index,
            "detached": self._detached,
            "num_samples": self._num_samples,
            "num_suggested": self._num_suggested,
            "proposal_times": self.proposal_times,
        }

    def set_state(self, state: dict[str, Any]) -> None:
        """Load :meth:`get_state` output; the state must belong to the same metric, mode and space."""
        if state.get("format") != _STATE_FORMAT:
            raise ValueError(f"not an AxSearcher state (format {state.get('format')!r})")
        saved = (state["metric"], state["mode"], state["space"]["parameters"])
        if saved != (self._metric, self._mode, self._ax_names()):
            raise ValueError(
                f"saved searcher optimised {saved[0]!r} ({saved[1]}) over {saved[2]}, this one "
                f"{self._metric!r} ({self._mode}) over {self._ax_names()}"
            )
        self._seed = state["seed"]
        self._num_init_trials = state["num_init_trials"]
        snapshot = state["ax_client"]
        self._client = _client_from_json(snapshot, self._seed) if snapshot is not None else None
        self._warm_start = [(params, score) for params, score in state["warm_start"]]
        self._queue = [(index, params) for index, params in state["queue"]]
        self._live = {trial_id: (index, params) for trial_id, (index, params) in state["live"].items()}
        self._trial_index = dict(state["trial_index"])
        self._detached = dict(state["detached"])
        self._num_samples = state["num_samples"]
        self._num_suggested = state["num_suggested"]
        self.proposal_times = list(state["proposal_times"])

    def __getstate__(self) -> dict[str, Any]:
        # Tuner pickles its searcher into tuner.pkl; go through Ax's JSON, not pickle, for the client.
        state = {k: v for k, v in self.__dict__.items() if k not in ("_client", "_queue", "_live")}
        state["_saved"] = self.get_state()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        saved = state.pop("_saved")
        self.__dict__.update(state)
        self.set_state(saved)  # an exact copy: running trials stay running

    # ------------------------------------------------------------------ introspection

    @property
    def client(self) -> Client:
        """The underlying Ax client (e.g. for ``get_best_parameterization``)."""
        return self._ensure_client()

    @property
    def trial_indices(self) -> dict[str, int]:
        """Tune trial id -> Ax trial index, in the order the trials were handed to Tune."""
        return dict(self._trial_index)

    def summary(self) -> pd.DataFrame:
        """Ax's per-trial summary (status, generation node, score, parameters) plus a ``trial_id`` column."""
        table = self._ensure_client().summarize()
        if table.empty:  # Ax returns a frame without columns before the first trial
            return pd.DataFrame(columns=["trial_index", "trial_status", "generation_node", "trial_id"])
        by_index = {index: trial_id for trial_id, index in self._trial_index.items()}
        table["trial_id"] = table["trial_index"].map(by_index)
        return table

    @property
    def num_completed(self) -> int:
        """Number of Ax trials with status COMPLETED (warm-start points with scores included)."""
        table = self.summary()
        return int((table["trial_status"] == "COMPLETED").sum())

    @property
    def generation_nodes(self) -> dict[int, str]:
        """Ax trial index -> the step that made it: ``Sobol``, ``MBM`` (BoTorch) or ``Manual`` (attached)."""
        table = self.summary()
        # Ax leaves the column empty for attached trials, and omits it when every trial was attached.
        nodes = table["generation_node"] if "generation_node" in table else [None] * len(table)
        return {
            int(i): (node if isinstance(node, str) else "Manual")
            for i, node in zip(table["trial_index"], nodes, strict=True)
        }

    # ------------------------------------------------------------------ internals

    def _ax_names(self) -> list[str]:
        return [param.name for param, _, _ in self._space.iter_parameters()]

    def _ensure_client(self) -> Client:
        if self._client is None:
            self._client = self._new_client()
        return self._client

    def _new_client(self) -> Client:
        client = Client(random_seed=self._seed)
        client.configure_experiment(
            parameters=ax_parameters(self._space),
            parameter_constraints=ax_constraints(self._space) or None,
            name=self._space.name,
            description=self._space.description,
        )
        client.configure_optimization(objective=("-" if self._mode == "min" else "") + self._ax_metric)
        client.configure_generation_strategy(
            method="fast",
            initialization_budget=self._num_init_trials,
            initialization_random_seed=self._seed,
            # The warm-start baseline, not the centre of the box, is our reference point.
            initialize_with_center=False,
            use_existing_trials_for_initialization=True,
        )
        for i, (params, score) in enumerate(self._warm_start):
            index = client.attach_trial(parameters=params, arm_name=f"warm_start_{i}")
            if score is None:
                self._queue.append((index, params))
            elif math.isfinite(score):
                client.complete_trial(index, raw_data={self._ax_metric: float(score)})
            else:
                client.mark_trial_failed(index, failed_reason=f"warm-start score {score}")
        return client

    def _propose(self, client: Client) -> str | None:
        """Fill the queue from Ax; returns None on success, else what ``suggest`` should return."""
        free = self._max_concurrent - len(self._live)
        if self._num_samples is not None:
            free = min(free, max(1, self._num_samples - self._num_suggested))
        started = time.perf_counter()
        try:
            with _torch_threads(self._proposal_threads):
                batch = client.get_next_trials(max_trials=free)
        except (DataRequiredError, MaxParallelismReachedException) as exc:
            # Ax waits for results before leaving its initial design; running trials will bring them.
            if self._live:
                return None
            logger.warning("Ax cannot propose and no trial is running (%s); ending the search", exc)
            return Searcher.FINISHED
        except OptimizationComplete as exc:
            logger.info("Ax has nothing left to propose: %s", exc)
            return Searcher.FINISHED
        finally:
            self.proposal_times.append(time.perf_counter() - started)
        if not batch:
            return None if self._live else Searcher.FINISHED
        self._queue.extend(sorted(batch.items()))
        return None

    def _attach_late_result(
        self, client: Client, trial_id: str, result: dict | None, outcome: str
    ) -> tuple[int, dict[str, Any]] | None:
        """A result for a trial not running in Ax: attach it as a new Ax trial if it is one of ours."""
        params = self._detached.pop(trial_id, None)
        if params is None:
            # ResumeConfig RESTART gives a re-run a new id; recognise it by its config.
            try:
                candidate = self._space.encode(_config_overrides(result, self._space.keys))
            except ValueError:
                candidate = None
            match = next((tid for tid, p in self._detached.items() if p == candidate), None)
            params = self._detached.pop(match) if match is not None else None
        if params is None:
            logger.warning("Ignoring a result for trial %s, which this searcher did not propose", trial_id)
            return None
        if outcome != "complete":
            self._detached[trial_id] = params
            return None
        index = client.attach_trial(parameters=params)
        self._trial_index[trial_id] = index
        return index, params
