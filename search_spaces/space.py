"""Search spaces over the design choices of offline model-based RL, read from YAML files.

A search space names trial-config keys (dotted, e.g. ``rollout.horizon``) and says which values the
optimizer may give them. A suggestion is applied to a trial as flat overrides ``{dotted_key: value}``.

YAML schema
-----------
::

    name: quick                 # optional, defaults to the file's stem
    description: free text      # optional
    parameters:                 # searched parameters, keyed by dotted config key, in this order
      penalty:
        choice: [max_aleatoric, ensemble_std]   # >= 2 distinct values, all str, all int, all
                                                # float (ints allowed) or all bool
        ordered: false          # optional; default true for numbers, false for str and bool
        depends:                # optional: parameters that exist only on one value's branch
          max_aleatoric: {lam: {float: [0.1, 10.0], log: true}}
          ensemble_std:  {lam: {float: [0.1, 10.0], log: true}}
      rollout.horizon: {int: [1, 10]}          # integers low..high, both included
      real_ratio: {float: [0.05, 0.5]}         # reals in [low, high]
      num_models: {int: [2, 10], log: true}    # log: sampled and modelled on a log scale (low > 0)
    fixed:                      # optional: overrides applied to every trial, never searched
      num_elites: 5
    constraints:                # optional: order constraints between searched numeric parameters
      - num_elites <= num_models              # `a <= b` or `a >= b`, nothing else

Every parameter spec holds exactly one kind key (``choice``, ``int`` or ``float``) plus that kind's
options (``log`` for ranges; ``ordered`` and ``depends`` for choices). Branch parameters (under
``depends``) are ranges or plain choices: one level of nesting, which is what per-penalty ``lam``
ranges need. A branch key may appear under several values of one choice (each with its own range) and
under no other parameter. A branch with no entry (e.g. ``none``) searches nothing extra, so the trial
keeps its config default for those keys.

Keys must be dotted identifiers without ``__``: optimizers need globally unique parameter names, so a
branch parameter is named ``<key>__<choice value>`` (``lam__max_aleatoric``) there, and
:meth:`SearchSpace.decode` maps it back to ``lam``.

Constraints
-----------
A constraint ``a <= b`` (or ``a >= b``) relates two searched top-level ``int``/``float`` parameters, or
two fixed values (then it is checked once, at load). The lower side's low bound must not exceed the
upper side's low bound, so every value of the upper side leaves a feasible lower side. Enforcement:

- Ax: passed as a linear ``parameter_constraints`` entry; Ax only proposes feasible points.
- :meth:`SearchSpace.sample_random`: rejection sampling (resample the whole point), so random search
  stays uniform over the feasible region.
- :meth:`SearchSpace.optuna_space`: repair by clipping, ``a = min(a, b)``. A define-by-run function
  cannot resample, and the repair is deterministic, so Optuna still sees a consistent objective of its
  raw samples.

Errors
------
Every problem in a file raises :class:`SearchSpaceError` with a one-line message naming the file, the
parameter, the bad value and what is allowed, e.g.
``quick.yaml: parameter 'rollout.horizon': bounds [10, 1] must have low < high``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

ChoiceValue = str | int | float | bool
"""A value a choice parameter can take."""

BRANCH_SEP = "__"
"""Joins a branch parameter's key and its choice value into the name optimizers see (``lam__max_aleatoric``)."""
# Rejection sampling gives up after this many draws: a feasible region this small is a broken file.
_MAX_RESAMPLES = 1000
# Relative slack for values that sit on a bound up to float rounding (e.g. 10 ** log10(10.0)).
_BOUND_SLACK = 1e-9


class SearchSpaceError(ValueError):
    """A search-space file, or a point checked against it, breaks the rules; the message is one line."""


def fmt_value(value: Any) -> str:
    """Short one-line rendering of a value for error messages."""
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(fmt_value(v) for v in value) + "]"
    return str(value).replace("\n", " ")


def is_number(value: Any) -> bool:
    # bool is an int subclass, but `true` is never a sensible bound or range value.
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True)
class RangeParameter:
    """An integer or real parameter searched between two bounds."""

    key: str
    """Dotted trial-config key this parameter overrides, e.g. ``rollout.horizon``."""
    kind: Literal["int", "float"]
    """``int``: integers from low to high, both included; ``float``: reals in [low, high]."""
    low: float
    """Lower bound (an integer for ``int``)."""
    high: float
    """Upper bound, > low (an integer for ``int``)."""
    log: bool = False
    """Sample and model on a log scale (needs low > 0): right for weights spanning decades."""
    name: str = ""
    """Optimizer-side name, unique in the space: the key, or ``<key>__<value>`` inside a branch."""

    def contains(self, value: Any) -> bool:
        """Whether ``value`` is a valid value of this parameter (ints must be integral)."""
        if not is_number(value) or not math.isfinite(value):
            return False
        if self.kind == "int" and float(value) != round(value):
            return False
        slack = _BOUND_SLACK * max(1.0, abs(self.low), abs(self.high))
        return self.low - slack <= value <= self.high + slack

    def clip(self, value: float) -> int | float:
        """The nearest valid value: clipped into the bounds, rounded for ``int``."""
        clipped = min(max(float(value), self.low), self.high)
        return int(round(clipped)) if self.kind == "int" else clipped

    def native(self, value: Any) -> int | float:
        """``value`` as a plain Python int or float (optimizers hand back numpy scalars), in bounds."""
        return self.clip(value)

    def sample(self, rng: np.random.Generator) -> int | float:
        """One draw, uniform on the parameter's scale."""
        if self.kind == "int":
            if not self.log:
                return int(rng.integers(int(self.low), int(self.high) + 1))
            # Log-uniform over [low, high + 1) floored, so every integer gets its log-width of mass.
            draw = math.exp(rng.uniform(math.log(self.low), math.log(self.high + 1)))
            return min(int(math.floor(draw)), int(self.high))
        if self.log:
            return self.clip(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))
        return float(rng.uniform(self.low, self.high))

    def describe(self) -> str:
        """The allowed values, for error messages."""
        scale = ", log scale" if self.log else ""
        bounds = (
            f"[{int(self.low)}, {int(self.high)}]" if self.kind == "int" else f"[{self.low}, {self.high}]"
        )
        return f"{self.kind} in {bounds}{scale}"


@dataclass(frozen=True)
class ChoiceParameter:
    """A parameter taking one of a list of values, optionally with branch-only parameters."""

    key: str
    """Dotted trial-config key this parameter overrides, e.g. ``penalty``."""
    values: tuple[ChoiceValue, ...]
    """The allowed values, at least two, distinct, all of ``value_type``."""
    value_type: Literal["str", "int", "float", "bool"]
    """The values' type, as Ax names it."""
    ordered: bool
    """Whether the values have a meaningful order (numbers) or are categories (penalty names)."""
    depends: Mapping[ChoiceValue, tuple[Parameter, ...]] = field(default_factory=dict)
    """Per value, the parameters that exist only when this parameter takes that value."""
    name: str = ""
    """Optimizer-side name, unique in the space: the key, or ``<key>__<value>`` inside a branch."""

    def contains(self, value: Any) -> bool:
        """Whether ``value`` is one of the values (type-aware: ``True`` is not ``1``)."""
        return self.match(value) is not None

    def match(self, value: Any) -> ChoiceValue | None:
        """The listed value equal to ``value``, or None. Floats accept integral ints."""
        for candidate in self.values:
            same_type = type(candidate) is type(value) or (self.value_type == "float" and is_number(value))
            if same_type and candidate == value:
                return candidate
        return None

    def native(self, value: Any) -> ChoiceValue:
        """``value`` as the listed Python value (optimizers hand back numpy scalars)."""
        if isinstance(value, np.generic):
            value = value.item()
        matched = self.match(value)
        if matched is None:
            raise ValueError(f"parameter '{self.key}': {fmt_value(value)} is not one of {fmt_value(self.values)}")
        return matched

    def sample(self, rng: np.random.Generator) -> ChoiceValue:
        """One draw, uniform over the values."""
        return self.values[int(rng.integers(len(self.values)))]

    def describe(self) -> str:
        """The allowed values, for error messages."""
        return f"one of {fmt_value(self.values)}"


Parameter = RangeParameter | ChoiceParameter
"""A searched parameter."""


@dataclass(frozen=True)
class Constraint:
    """``lower <= upper`` between two numeric parameters (searched, or both fixed)."""

    lower: str
    """Key of the side that must be smaller or equal."""
    upper: str
    """Key of the side that must be greater or equal."""
    text: str
    """The constraint as written in the file, for messages."""

    def holds(self, overrides: Mapping[str, Any]) -> bool:
        """Whether a point satisfies the constraint."""
        return overrides[self.lower] <= overrides[self.upper]


class _SuggestTrial(Protocol):
    """The part of ``optuna.trial.Trial`` that a define-by-run function uses."""

    def suggest_categorical(self, name: str, choices: list[Any]) -> Any: ...

    def suggest_int(self, name: str, low: int, high: int, *, log: bool = False) -> int: ...

    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False) -> float: ...


@dataclass(frozen=True)
class SearchSpace:
    """A validated search space; see the module docstring for the file format."""

    name: str
    """Short name, e.g. ``quick``; defaults to the file's stem."""
    description: str
    """Free text shown in reports."""
    parameters: tuple[Parameter, ...]
    """Searched top-level parameters, in file order; branch parameters hang off choices."""
    fixed: Mapping[str, Any]
    """Overrides applied to every trial and never searched."""
    constraints: tuple[Constraint, ...] = ()
    """Order constraints between searched numeric parameters."""
    source: str = "<dict>"
    """Where the space came from (a file name), used in error messages."""

    # ------------------------------------------------------------------ structure

    def iter_parameters(self) -> Iterator[tuple[Parameter, ChoiceParameter | None, ChoiceValue | None]]:
        """Every searched parameter with its branch: ``(param, parent choice, parent value)``."""
        for param in self.parameters:
            yield param, None, None
            if isinstance(param, ChoiceParameter):
                for value, branch in param.depends.items():
                    for child in branch:
                        yield child, param, value

    @property
    def keys(self) -> tuple[str, ...]:
        """Every config key a suggestion may set: searched (top-level and branch) and fixed."""
        seen: dict[str, None] = {}
        for param, _, _ in self.iter_parameters():
            seen[param.key] = None
        for key in self.fixed:
            seen[key] = None
        return tuple(seen)

    def _active(self, choices: Mapping[str, Any]) -> Iterator[Parameter]:
        """The parameters of the point whose top-level choice values are ``choices``."""
        for param in self.parameters:
            yield param
            if isinstance(param, ChoiceParameter) and param.depends:
                chosen = param.match(choices.get(param.key))
                yield from param.depends.get(chosen, ()) if chosen is not None else ()

    # ------------------------------------------------------------------ points

    def decode(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Optimizer parameters (Ax/Optuna names) to flat dotted overrides, fixed values included.

        Raises ValueError if a parameter of the point's branch is missing or a name is unknown.
        """
        by_name = {param.name: param for param, _, _ in self.iter_parameters()}
        unknown = sorted(set(params) - set(by_name))
        if unknown:
            raise ValueError(f"{self.source}: unknown optimizer parameters {fmt_value(unknown)}")
        choices = {p.key: params.get(p.name) for p in self.parameters if isinstance(p, ChoiceParameter)}
        overrides: dict[str, Any] = {}
        for param in self._active(choices):
            if param.name not in params:
                raise ValueError(f"{self.source}: optimizer point lacks parameter '{param.name}'")
            overrides[param.key] = param.native(params[param.name])
        overrides.update(self.fixed)
        return overrides

    def encode(self, overrides: Mapping[str, Any]) -> dict[str, Any]:
        """Flat dotted overrides to optimizer parameters: the inverse of :meth:`decode`.

        Points outside the space are rejected, not clipped: a warm-start score belongs to the exact
        point that earned it. Keys of inactive branches (``lam`` when ``penalty`` is ``none``) are
        dropped, since they cannot affect that trial. Use :meth:`project` first to pull an
        unevaluated point (a hand-tuned baseline) into the space. Raises :class:`SearchSpaceError`
        naming the key, the value and what is allowed.
        """
        where = f"{self.source}: point {_fmt_point(overrides)}"
        known = set(self.keys)
        unknown = [key for key in overrides if key not in known]
        if unknown:
            raise SearchSpaceError(f"{where}: keys {fmt_value(unknown)} are not parameters of this space")
        for key, value in self.fixed.items():
            if key in overrides and overrides[key] != value:
                got, fixed = fmt_value(overrides[key]), fmt_value(value)
                raise SearchSpaceError(f"{where}: parameter '{key}': {got} is not the fixed value {fixed}")
        params: dict[str, Any] = {}
        checked: dict[str, Any] = {}
        for param in self._active(overrides):
            if param.key not in overrides:
                raise SearchSpaceError(f"{where}: parameter '{param.key}' is missing ({param.describe()})")
            value = overrides[param.key]
            if not param.contains(value):
                raise SearchSpaceError(
                    f"{where}: parameter '{param.key}': {fmt_value(value)} is not allowed ({param.describe()})"
                )
            params[param.name] = param.native(value)
            checked[param.key] = params[param.name]
        checked.update(self.fixed)
        for constraint in self.constraints:
            if not constraint.holds(checked):
                raise SearchSpaceError(f"{where}: violates constraint '{constraint.text}'")
        return params

    def project(self, overrides: Mapping[str, Any]) -> dict[str, Any]:
        """The point of this space nearest to ``overrides``, as overrides.

        Numbers are clipped into bounds (ints rounded), fixed keys take their fixed values, keys the
        space does not search (or of inactive branches) are dropped and constraints are repaired by
        clipping. Choice values outside the list and missing searched keys still raise
        :class:`SearchSpaceError`. Meant for unevaluated starting points such as hand-tuned
        baselines; never for points with a score.
        """
        where = f"{self.source}: point {_fmt_point(overrides)}"
        projected: dict[str, Any] = {}
        for param in self._active(overrides):
            if param.key not in overrides:
                raise SearchSpaceError(f"{where}: parameter '{param.key}' is missing ({param.describe()})")
            value = overrides[param.key]
            if isinstance(param, RangeParameter) and is_number(value) and math.isfinite(value):
                projected[param.key] = param.clip(value)
            elif param.contains(value):
                projected[param.key] = param.native(value)
            else:
                raise SearchSpaceError(
                    f"{where}: parameter '{param.key}': {fmt_value(value)} is not allowed ({param.describe()})"
                )
        projected.update(self.fixed)
        return self.repair(projected)

    def repair(self, overrides: dict[str, Any]) -> dict[str, Any]:
        """Clip the lower side of violated constraints down to the upper side, until all hold.

        Values only decrease and never below their low bounds (checked at load), so this ends after
        at most one pass per constraint.
        """
        for _ in range(len(self.constraints) + 1):
            violated = [c for c in self.constraints if not c.holds(overrides)]
            if not violated:
                break
            for constraint in violated:
                overrides[constraint.lower] = overrides[constraint.upper]
        return overrides

    # ------------------------------------------------------------------ sampling

    def sample_random(self, rng: np.random.Generator) -> dict[str, Any]:
        """A uniform random point (on each parameter's scale) as overrides, fixed values included.

        Constraints are enforced by rejection: the whole point is redrawn until they hold.
        """
        for _ in range(_MAX_RESAMPLES):
            overrides: dict[str, Any] = {}
            for param in self.parameters:
                overrides[param.key] = param.sample(rng)
                if isinstance(param, ChoiceParameter):
                    for child in param.depends.get(overrides[param.key], ()):
                        overrides[child.key] = child.sample(rng)
            overrides.update(self.fixed)
            if all(c.holds(overrides) for c in self.constraints):
                return overrides
        raise SearchSpaceError(
            f"{self.source}: no point satisfying the constraints in {_MAX_RESAMPLES} random draws"
        )

    def optuna_space(self, trial: _SuggestTrial) -> dict[str, Any]:
        """Define-by-run search space for Optuna (and Ray's ``OptunaSearch(space=...)``).

        Suggests each parameter under its optimizer name (branch parameters only on their branch)
        and returns the flat dotted overrides, fixed values included, with constraints repaired by
        clipping (see the module docstring).
        """
        params: dict[str, Any] = {}

        def suggest(param: Parameter) -> Any:
            if isinstance(param, ChoiceParameter):
                return trial.suggest_categorical(param.name, list(param.values))
            if param.kind == "int":
                return trial.suggest_int(param.name, int(param.low), int(param.high), log=param.log)
            return trial.suggest_float(param.name, param.low, param.high, log=param.log)

        for param in self.parameters:
            params[param.name] = suggest(param)
            if isinstance(param, ChoiceParameter):
                for child in param.depends.get(params[param.name], ()):
                    params[child.name] = suggest(child)
        return self.repair(self.decode(params))


def _fmt_point(overrides: Mapping[str, Any]) -> str:
    return "{" + ", ".join(f"{k}: {fmt_value(v)}" for k, v in overrides.items()) + "}"
