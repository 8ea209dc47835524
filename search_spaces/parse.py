"""Reading a search-space document: :class:`SpaceParser` checks a parsed YAML mapping against the schema
in :mod:`search_spaces.space` and builds the :class:`~search_spaces.space.SearchSpace`, failing on the
first problem with one line that names the file, the parameter, the bad value and what is allowed."""

from __future__ import annotations

import math
import re
from importlib import resources
from pathlib import Path
from typing import Any, Literal, NoReturn

import yaml

from search_spaces.space import (
    BRANCH_SEP,
    ChoiceParameter,
    ChoiceValue,
    Constraint,
    Parameter,
    RangeParameter,
    SearchSpace,
    SearchSpaceError,
    fmt_value,
    is_number,
)

_TOP_LEVEL_KEYS = ("name", "description", "parameters", "fixed", "constraints")
_KINDS = ("choice", "int", "float")
_OPTIONS: dict[str, tuple[str, ...]] = {"choice": ("ordered", "depends"), "int": ("log",), "float": ("log",)}
_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_CONSTRAINT_RE = re.compile(r"^\s*(\S+)\s*(<=|>=)\s*(\S+)\s*$")


class SpaceParser:
    """Turns a parsed YAML document into a :class:`SearchSpace`, failing with one-line messages."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, problem: str, key: str | None = None, branch: str | None = None) -> NoReturn:
        where = self.source
        if key is not None:
            where += f": parameter '{key}'"
            if branch is not None:
                where += f" (when {branch})"
        raise SearchSpaceError(f"{where}: {problem}".replace("\n", " "))

    def space(self, data: Any, default_name: str) -> SearchSpace:
        if not isinstance(data, dict):
            self.fail(f"the document must be a mapping with keys {fmt_value(_TOP_LEVEL_KEYS)}, got {fmt_value(data)}")
        for top_key in data:
            if top_key not in _TOP_LEVEL_KEYS:
                self.fail(f"unknown top-level key {fmt_value(top_key)} (allowed: {', '.join(_TOP_LEVEL_KEYS)})")
        name = data.get("name", default_name or "unnamed")
        description = data.get("description", "")
        if not isinstance(name, str) or not name:
            self.fail(f"'name' must be a non-empty string, got {fmt_value(name)}")
        if not isinstance(description, str):
            self.fail(f"'description' must be a string, got {fmt_value(description)}")

        raw_params = data.get("parameters")
        if not isinstance(raw_params, dict) or not raw_params:
            self.fail(f"'parameters' must be a non-empty mapping of key -> spec, got {fmt_value(raw_params)}")
        parameters = tuple(self.parameter(key, spec, branch=None) for key, spec in raw_params.items())

        fixed = data.get("fixed") or {}
        if not isinstance(fixed, dict):
            self.fail(f"'fixed' must be a mapping of key -> value, got {fmt_value(fixed)}")
        for key in fixed:
            self.check_key(key)

        self.check_unique(parameters, fixed)
        constraints = self.constraints(data.get("constraints") or [], parameters, fixed)
        return SearchSpace(
            name=name,
            description=description,
            parameters=parameters,
            fixed=dict(fixed),
            constraints=constraints,
            source=self.source,
        )

    def check_key(self, key: Any) -> str:
        if not isinstance(key, str) or not _KEY_RE.match(key) or BRANCH_SEP in key:
            self.fail(
                f"key {fmt_value(key)} must be a dotted identifier (e.g. rollout.horizon) without '{BRANCH_SEP}'"
            )
        return key

    def parameter(self, key: Any, spec: Any, branch: tuple[str, ChoiceValue] | None) -> Parameter:
        key = self.check_key(key)
        where = f"{branch[0]}={branch[1]}" if branch else None
        name = f"{key}{BRANCH_SEP}{branch[1]}" if branch else key
        if not isinstance(spec, dict):
            self.fail(f"spec must be a mapping like {{int: [1, 10]}}, got {fmt_value(spec)}", key, where)
        kinds = [k for k in spec if k in _KINDS]
        if len(kinds) != 1:
            unknown = [k for k in spec if k not in _KINDS and k not in ("log", "ordered", "depends")]
            if unknown:
                self.fail(
                    f"unknown parameter kind {fmt_value(unknown[0])} (allowed: {', '.join(_KINDS)})", key, where
                )
            self.fail(
                f"needs exactly one kind key out of {', '.join(_KINDS)}, got {fmt_value(list(spec))}", key, where
            )
        kind = kinds[0]
        for option in spec:
            if option != kind and option not in _OPTIONS[kind]:
                allowed = ", ".join(_OPTIONS[kind])
                self.fail(
                    f"unknown option {fmt_value(option)} for a {kind} parameter (allowed: {allowed})", key, where
                )
        if kind == "choice":
            return self.choice(key, name, spec, branch, where)
        return self.range(key, name, kind, spec, where)

    def range(
        self, key: str, name: str, kind: Literal["int", "float"], spec: dict, where: str | None
    ) -> RangeParameter:
        bounds = spec[kind]
        if not isinstance(bounds, list) or len(bounds) != 2 or not all(is_number(b) for b in bounds):
            self.fail(f"{kind} bounds must be [low, high] numbers, got {fmt_value(bounds)}", key, where)
        low, high = bounds
        if kind == "int" and not all(isinstance(b, int) for b in bounds):
            self.fail(f"int bounds {fmt_value(bounds)} must be integers", key, where)
        if not all(math.isfinite(b) for b in bounds):
            self.fail(f"bounds {fmt_value(bounds)} must be finite", key, where)
        if low >= high:
            self.fail(
                f"bounds {fmt_value(bounds)} must have low < high (use 'fixed' for a single value)", key, where
            )
        log = spec.get("log", False)
        if not isinstance(log, bool):
            self.fail(f"'log' must be true or false, got {fmt_value(log)}", key, where)
        if log and low <= 0:
            self.fail(f"log scale needs low > 0, got bounds {fmt_value(bounds)}", key, where)
        return RangeParameter(key=key, kind=kind, low=low, high=high, log=log, name=name)

    def choice(
        self, key: str, name: str, spec: dict, branch: tuple[str, ChoiceValue] | None, where: str | None
    ) -> ChoiceParameter:
        values = spec["choice"]
        if not isinstance(values, list) or len(values) < 2:
            self.fail(f"choice {fmt_value(values)} must list at least 2 values (use 'fixed' for one)", key, where)
        value_type = self.value_type(values, key, where)
        if value_type == "float":
            values = [float(v) for v in values]
        if len(set(values)) != len(values):
            self.fail(f"choice {fmt_value(values)} lists a value twice", key, where)
        ordered = spec.get("ordered", value_type in ("int", "float"))
        if not isinstance(ordered, bool):
            self.fail(f"'ordered' must be true or false, got {fmt_value(ordered)}", key, where)
        param = ChoiceParameter(
            key=key, values=tuple(values), value_type=value_type, ordered=ordered, name=name
        )

        raw_depends = spec.get("depends") or {}
        if raw_depends and branch is not None:
            self.fail("'depends' is not allowed inside a branch (one level of nesting)", key, where)
        if not isinstance(raw_depends, dict):
            self.fail(
                f"'depends' must map choice values to parameter specs, got {fmt_value(raw_depends)}", key, where
            )
        depends: dict[ChoiceValue, tuple[Parameter, ...]] = {}
        for raw_value, children in raw_depends.items():
            value = param.match(raw_value)
            if value is None:
                self.fail(
                    f"depends on {fmt_value(raw_value)}, which is not one of its values {fmt_value(param.values)}",
                    key,
                    where,
                )
            if not isinstance(children, dict) or not children:
                self.fail(
                    f"branch {fmt_value(raw_value)} must map keys to parameter specs, got {fmt_value(children)}",
                    key,
                    where,
                )
            depends[value] = tuple(self.parameter(k, s, branch=(key, value)) for k, s in children.items())
        return ChoiceParameter(
            key=key, values=tuple(values), value_type=value_type, ordered=ordered, depends=depends, name=name
        )

    def value_type(self, values: list, key: str, where: str | None) -> Literal["str", "int", "float", "bool"]:
        if all(isinstance(v, bool) for v in values):
            return "bool"
        if all(isinstance(v, str) for v in values):
            return "str"
        if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            return "int"
        if all(is_number(v) for v in values):
            return "float"
        self.fail(f"choice {fmt_value(values)} mixes value types (all str, all numbers or all bool)", key, where)

    def check_unique(self, parameters: tuple[Parameter, ...], fixed: dict) -> None:
        owner: dict[str, str] = {}  # branch key -> the choice parameter whose branches hold it
        top = {p.key for p in parameters}
        for param in parameters:
            if param.key in fixed:
                self.fail(f"is both fixed ({fmt_value(fixed[param.key])}) and searched", param.key)
            if not isinstance(param, ChoiceParameter):
                continue
            for value, branch in param.depends.items():
                for child in branch:
                    where = f"{param.key}={value}"
                    if child.key in top:
                        self.fail("is searched at the top level and inside a branch", child.key, where)
                    if child.key in fixed:
                        self.fail(f"is both fixed ({fmt_value(fixed[child.key])}) and searched", child.key, where)
                    if owner.setdefault(child.key, param.key) != param.key:
                        self.fail(
                            f"already belongs to the branches of '{owner[child.key]}'", child.key, where
                        )

    def constraints(self, raw: Any, parameters: tuple[Parameter, ...], fixed: dict) -> tuple[Constraint, ...]:
        if not isinstance(raw, list):
            self.fail(f"'constraints' must be a list of strings like 'a <= b', got {fmt_value(raw)}")
        ranges = {p.key: p for p in parameters if isinstance(p, RangeParameter)}
        out = []
        for text in raw:
            match = _CONSTRAINT_RE.match(text) if isinstance(text, str) else None
            if match is None:
                self.fail(f"constraint {fmt_value(text)} must read 'a <= b' or 'a >= b' with two keys")
            left, op, right = match.groups()
            lower, upper = (left, right) if op == "<=" else (right, left)
            if lower in fixed and upper in fixed:
                if not (
                    is_number(fixed[lower]) and is_number(fixed[upper]) and fixed[lower] <= fixed[upper]
                ):
                    self.fail(f"fixed values violate constraint {fmt_value(text)}", lower)
                continue
            for key in (lower, upper):
                if key not in ranges:
                    kind = "fixed" if key in fixed else "not a searched top-level int/float parameter"
                    self.fail(f"constraint {fmt_value(text)} needs both sides searched int/float ({kind})", key)
            if ranges[lower].low > ranges[upper].low:
                self.fail(
                    f"constraint {fmt_value(text)}: low bound {ranges[lower].low} exceeds the low bound "
                    f"{ranges[upper].low} of '{upper}', so some values of '{upper}' leave no feasible value",
                    lower,
                )
            out.append(Constraint(lower=lower, upper=upper, text=text.strip()))
        return tuple(out)


# ---------------------------------------------------------------- loading
def load_space(path: str | Path) -> SearchSpace:
    """Read and validate a search-space YAML file."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise SearchSpaceError(f"{path}: search-space file not found") from None
    except UnicodeDecodeError:
        raise SearchSpaceError(f"{path}: not a text file (a search space is YAML)") from None
    except OSError as exc:
        raise SearchSpaceError(f"{path}: cannot read search-space file ({exc.strerror})") from None
    return space_from_yaml(text, source=path.name, default_name=path.stem)


def space_from_yaml(text: str, source: str = "<yaml>", default_name: str = "") -> SearchSpace:
    """Parse and validate YAML text; ``source`` names it in error messages."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise SearchSpaceError(f"{source}: malformed YAML{where}: {problem}") from None
    return space_from_dict(data, source=source, default_name=default_name)


def space_from_dict(data: Any, source: str = "<dict>", default_name: str = "") -> SearchSpace:
    """Validate an already-parsed mapping (the YAML document); ``source`` names it in messages."""
    return SpaceParser(source).space(data, default_name)


def builtin_names() -> list[str]:
    """Names of the search spaces shipped with the package (``quick``, ``paper``, ...)."""
    return sorted(p.name[: -len(".yaml")] for p in resources.files("search_spaces").iterdir()
                  if p.name.endswith(".yaml"))


def load_builtin(name: str) -> SearchSpace:
    """Load a shipped search space by name, e.g. ``load_builtin("quick")``."""
    names = builtin_names()
    if name not in names:
        raise SearchSpaceError(f"{name}: no built-in search space of that name (known: {', '.join(names)})")
    text = resources.files("search_spaces").joinpath(f"{name}.yaml").read_text()
    return space_from_yaml(text, source=f"{name}.yaml", default_name=name)
