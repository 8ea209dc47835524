"""Search spaces as YAML files and the code that validates them and turns them into optimizer inputs."""

from search_spaces.space import (
    ChoiceParameter,
    Constraint,
    RangeParameter,
    SearchSpace,
    SearchSpaceError,
    builtin_names,
    load_builtin,
)

__all__ = [
    "ChoiceParameter",
    "Constraint",
    "RangeParameter",
    "SearchSpace",
    "SearchSpaceError",
    "builtin_names",
    "load_builtin",
]
