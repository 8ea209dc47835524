"""Search spaces as plain data (``space``) and the YAML parser that builds them (``parse``); the data never
imports the parser, and neither knows any optimiser backend."""

from search_spaces.parse import builtin_names, load_builtin, load_space, space_from_dict, space_from_yaml
from search_spaces.space import ChoiceParameter, Constraint, RangeParameter, SearchSpace, SearchSpaceError

__all__ = [
    "ChoiceParameter",
    "Constraint",
    "RangeParameter",
    "SearchSpace",
    "SearchSpaceError",
    "builtin_names",
    "load_builtin",
    "load_space",
    "space_from_dict",
    "space_from_yaml",
]
