"""Search-space files: the shipped spaces, every validation error, and conversions to optimizers."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
import yaml
from ax.api.client import Client

from search_spaces import SearchSpace, SearchSpaceError, builtin_names, load_builtin, load_space, space_from_dict
from search_spaces.space import ChoiceParameter, RangeParameter
from trials.config import TrialConfig
from trials.data.baselines import hand_tuned
from tuner.search.ax import ax_constraints, ax_parameters
from tuner.search.optuna import optuna_distributions

PENALTIES = ["max_aleatoric", "max_pairwise_diff", "ensemble_std", "ensemble_var", "ll_var", "loo_kl"]
BASELINE = {
    "penalty": "max_aleatoric",
    "lam": 5.0,
    "rollout.horizon": 5,
    "num_models": 7,
    "num_elites": 5,
    "real_ratio": 0.05,
}

VALID: dict[str, Any] = {
    "name": "t",
    "parameters": {
        "penalty": {
            "choice": ["max_aleatoric", "ensemble_std", "none"],
            "depends": {
                "max_aleatoric": {"lam": {"float": [0.1, 10.0], "log": True}},
                "ensemble_std": {"lam": {"float": [0.01, 100.0], "log": True}},
            },
        },
        "rollout.horizon": {"int": [1, 50], "log": True},
        "num_models": {"int": [2, 10]},
        "num_elites": {"int": [1, 10]},
        "real_ratio": {"float": [0.0, 0.95]},
    },
    "fixed": {"sac.batch_size": 256},
    "constraints": ["num_elites <= num_models"],
}


def with_changes(**changes: Any) -> dict[str, Any]:
    """VALID with top-level or parameter entries replaced (a value of None deletes the entry)."""
    data = yaml.safe_load(yaml.safe_dump(VALID, sort_keys=False))  # deep copy, order kept
    for key, value in changes.items():
        target = (
            data
            if key in ("name", "description", "fixed", "constraints", "parameters")
            else data["parameters"]
        )
        if value is None:
            target.pop(key, None)
        else:
            target[key] = value
    return data


def load_text(tmp_path: Path, text: str, name: str = "bad.yaml") -> SearchSpace:
    path = tmp_path / name
    path.write_text(text)
    return load_space(path)


# ---------------------------------------------------------------- shipped files


@pytest.mark.parametrize("name", ["quick", "paper", "modern"])
def test_shipped_spaces_load_and_build_an_ax_experiment(name: str) -> None:
    space = load_builtin(name)
    client = Client(random_seed=0)
    client.configure_experiment(
        parameters=ax_parameters(space), parameter_constraints=ax_constraints(space)
    )
    assert space.name == name
    assert {"penalty", "lam", "rollout.horizon"} <= set(space.keys)


def test_builtin_names_and_unknown_builtin() -> None:
    assert {"quick", "paper"} <= set(builtin_names())
    with pytest.raises(SearchSpaceError, match=r"nope: no built-in search space .*known: .*paper.*quick"):
        load_builtin("nope")


def test_paper_space_searches_every_heuristic_with_its_own_log_lambda() -> None:
    space = load_builtin("paper")
    penalty = space.parameters[0]
    assert isinstance(penalty, ChoiceParameter)
    assert list(penalty.values) == PENALTIES
    for value in PENALTIES:
        (lam,) = penalty.depends[value]
        assert isinstance(lam, RangeParameter) and lam.key == "lam" and lam.log
        assert lam.high / lam.low >= 100, f"{value}: lambda range spans under two decades"
    by_key = {p.key: p for p in space.parameters}
    assert (by_key["rollout.horizon"].low, by_key["rollout.horizon"].high) == (1, 50)
    # max_pairwise_diff and loo_kl need two members, so the pool starts at 2.
    assert (by_key["num_models"].low, by_key["num_models"].high) == (2, 10)
    assert [c.text for c in space.constraints] == ["num_elites <= num_models"]
    assert space.encode(BASELINE)["lam__max_aleatoric"] == 5.0


def test_modern_space_spans_mopo_penalties_mobile_and_ravl_each_with_its_own_parameters() -> None:
    space = load_builtin("modern")
    penalty = space.parameters[0]
    assert isinstance(penalty, ChoiceParameter)
    assert list(penalty.values) == [*PENALTIES, "mobile", "none"]
    assert {p.key for p in penalty.depends["mobile"]} == {"lam", "mobile_samples"}
    assert {p.key for p in penalty.depends["none"]} == {"sac.num_critics", "sac.eta"}  # RAVL
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(200):  # every sampled point is a valid trial config, its branch's keys only
        point = space.sample_random(rng)
        seen.add(point["penalty"])
        TrialConfig(dataset="x.hdf5", dynamics={"pool_size": 10}).with_overrides(point)  # else ConfigError
        assert ("lam" in point) == (point["penalty"] != "none")
        assert ("sac.num_critics" in point) == ("sac.eta" in point) == (point["penalty"] == "none")
        assert ("mobile_samples" in point) == (point["penalty"] == "mobile")
    assert seen == set(penalty.values)
    for source in ("mopo_official", "mobile", "ravl"):  # each published method is a point of the space
        baseline = hand_tuned(source, "hopper-medium")
        projected = space.project(baseline)
        assert projected["penalty"] == baseline["penalty"]
        space.encode(projected)


def test_quick_space_fixes_the_ensemble_and_real_ratio() -> None:
    space = load_builtin("quick")
    assert dict(space.fixed) == {"num_models": 5, "num_elites": 3, "real_ratio": 0.05}
    assert [p.key for p in space.parameters] == ["penalty", "rollout.horizon"]
    # The hand-tuned baseline uses 7 models: outside this space, but project() pulls it in.
    with pytest.raises(SearchSpaceError, match=r"parameter 'num_models': 7 is not the fixed value 5"):
        space.encode(BASELINE)
    assert space.project(BASELINE) == {**BASELINE, "num_models": 5, "num_elites": 3}


# ---------------------------------------------------------------- validation errors

ERRORS = [
    (
        {**VALID, "paramters": {}},
        r"bad\.yaml: unknown top-level key 'paramters' \(allowed: name, description",
    ),
    (with_changes(lam={"uniform": [1, 2]}), r"parameter 'lam': unknown parameter kind 'uniform'"),
    (with_changes(lam={"int": [1, 2], "float": [1, 2]}), r"parameter 'lam': needs exactly one kind key"),
    (with_changes(lam={"float": [1, 2], "scale": "log"}), r"parameter 'lam': unknown option 'scale'"),
    (with_changes(penalty={"choice": []}), r"parameter 'penalty': choice \[\] must list at least 2 values"),
    (with_changes(penalty={"choice": ["a", "a"]}), r"parameter 'penalty': .* lists a value twice"),
    (with_changes(penalty={"choice": ["a", 1]}), r"parameter 'penalty': choice \['a', 1\] mixes value types"),
    (
        with_changes(**{"rollout.horizon": {"int": [10, 1]}}),
        r"parameter 'rollout\.horizon': bounds \[10, 1\]",
    ),
    (
        with_changes(real_ratio={"float": [0.5, 0.5]}),
        r"parameter 'real_ratio': bounds \[0\.5, 0\.5\] must have",
    ),
    (with_changes(real_ratio={"float": [0.0, 1.0], "log": True}), r"'real_ratio': log scale needs low > 0"),
    (
        with_changes(num_models={"int": [1, 2.5]}),
        r"parameter 'num_models': int bounds \[1, 2\.5\] must be integers",
    ),
    (
        with_changes(num_models={"int": [1]}),
        r"parameter 'num_models': int bounds must be \[low, high\] numbers",
    ),
    (with_changes(num_models={"int": [1, 10], "log": "yes"}), r"parameter 'num_models': 'log' must be true"),
    (with_changes(fixed={"num_models": 7}), r"parameter 'num_models': is both fixed \(7\) and searched"),
    (with_changes(fixed={"lam": 1.0}), r"parameter 'lam' \(when penalty=max_aleatoric\): is both fixed"),
    (
        with_changes(penalty={"choice": ["a", "b"], "depends": {"c": {"lam": {"float": [1, 2]}}}}),
        r"parameter 'penalty': depends on 'c', which is not one of its values \['a', 'b'\]",
    ),
    (
        with_changes(penalty={"choice": ["a", "b"], "depends": {"a": {"lam": {"float": [2, 1]}}}}),
        r"parameter 'lam' \(when penalty=a\): bounds \[2, 1\] must have low < high",
    ),
    (
        with_changes(penalty={"choice": ["a", "b"], "depends": {"a": {"real_ratio": {"float": [0, 1]}}}}),
        r"parameter 'real_ratio' \(when penalty=a\): is searched at the top level and inside a branch",
    ),
    (with_changes(**{"bad key": {"int": [1, 2]}}), r"key 'bad key' must be a dotted identifier"),
    (
        with_changes(**{"lam__x": {"int": [1, 2]}}),
        r"key 'lam__x' must be a dotted identifier .* without '__'",
    ),
    (
        with_changes(constraints=["num_elites < num_models"]),
        r"constraint 'num_elites < num_models' must read",
    ),
    (
        with_changes(constraints=["lam <= num_models"]),
        r"parameter 'lam': constraint .* needs both sides searched",
    ),
    (
        with_changes(constraints=["num_models <= num_elites"]),
        r"parameter 'num_models': constraint .* low bound 2 exceeds the low bound 1 of 'num_elites'",
    ),
    (
        with_changes(fixed={"a": 5, "b": 3}, constraints=["a <= b"]),
        r"parameter 'a': fixed values violate constraint 'a <= b'",
    ),
    (with_changes(parameters=None), r"'parameters' must be a non-empty mapping"),
    ([1, 2], r"the document must be a mapping"),
]


@pytest.mark.parametrize(("data", "pattern"), ERRORS, ids=[p[:40] for _, p in ERRORS])
def test_each_invalid_file_gives_one_line_naming_the_problem(tmp_path: Path, data: Any, pattern: str) -> None:
    with pytest.raises(SearchSpaceError, match=pattern) as info:
        load_text(tmp_path, yaml.safe_dump(data, sort_keys=False))
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("bad.yaml: ")


def test_the_brief_example_message_is_exact(tmp_path: Path) -> None:
    data = {"parameters": {"rollout.horizon": {"int": [10, 1]}}}
    with pytest.raises(SearchSpaceError) as info:
        load_text(tmp_path, yaml.safe_dump(data), name="quick.yaml")
    assert str(info.value) == (
        "quick.yaml: parameter 'rollout.horizon': bounds [10, 1] must have low < high "
        "(use 'fixed' for a single value)"
    )


def test_malformed_yaml_names_the_line(tmp_path: Path) -> None:
    with pytest.raises(
        SearchSpaceError, match=r"^bad\.yaml: malformed YAML at line 3, column \d+: \w"
    ) as info:
        load_text(tmp_path, "parameters:\n  lam: {float: [1, 2]}\n  x: {int: [1, 2]}}\n")
    assert "\n" not in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SearchSpaceError, match=r"nowhere\.yaml: search-space file not found"):
        load_space(tmp_path / "nowhere.yaml")


def test_search_space_error_is_a_value_error() -> None:
    assert issubclass(SearchSpaceError, ValueError)


# ---------------------------------------------------------------- conversions


@pytest.fixture
def space() -> SearchSpace:
    return space_from_dict(VALID, source="t.yaml")


def test_ax_parameters_give_each_branch_its_own_uniquely_named_lambda(space: SearchSpace) -> None:
    configs = {c.name: c for c in ax_parameters(space)}
    assert set(configs) == {
        "penalty",
        "lam__max_aleatoric",
        "lam__ensemble_std",
        "rollout.horizon",
        "num_models",
        "num_elites",
        "real_ratio",
    }
    assert configs["penalty"].dependent_parameters == {
        "max_aleatoric": ["lam__max_aleatoric"],
        "ensemble_std": ["lam__ensemble_std"],
    }
    assert configs["penalty"].is_ordered is False
    assert configs["lam__ensemble_std"].bounds == (0.01, 100.0)
    assert configs["lam__ensemble_std"].scaling == "log"
    assert configs["rollout.horizon"].parameter_type == "int"
    assert ax_constraints(space) == ["num_elites <= num_models"]


def test_decode_gives_flat_overrides_with_fixed_values(space: SearchSpace) -> None:
    ax_point = {
        "penalty": "ensemble_std",
        "lam__ensemble_std": np.float64(2.5),
        "rollout.horizon": np.int64(3),
        "num_models": 4,
        "num_elites": 2,
        "real_ratio": 0.25,
    }
    overrides = space.decode(ax_point)
    assert overrides == {
        "penalty": "ensemble_std",
        "lam": 2.5,
        "rollout.horizon": 3,
        "num_models": 4,
        "num_elites": 2,
        "real_ratio": 0.25,
        "sac.batch_size": 256,
    }
    assert type(overrides["lam"]) is float and type(overrides["rollout.horizon"]) is int
    assert space.encode(overrides) == {k: v for k, v in ax_point.items()}


def test_branch_without_parameters_sets_no_lambda(space: SearchSpace) -> None:
    point = {**BASELINE, "penalty": "none", "lam": 3.0}
    encoded = space.encode(point)  # lam is dropped: it cannot affect a penalty-free trial
    assert "lam" not in space.decode(encoded) and not any(k.startswith("lam") for k in encoded)


def test_encode_rejects_points_outside_the_space(space: SearchSpace) -> None:
    cases = [
        (
            {**BASELINE, "lam": 50.0},
            r"parameter 'lam': 50\.0 is not allowed \(float in \[0\.1, 10\.0\], log scale\)",
        ),
        ({**BASELINE, "penalty": "loo_kl"}, r"parameter 'penalty': 'loo_kl' is not allowed \(one of"),
        ({**BASELINE, "rollout.horizon": 2.5}, r"parameter 'rollout\.horizon': 2\.5 is not allowed \(int in"),
        ({**BASELINE, "num_elites": 9}, r"violates constraint 'num_elites <= num_models'"),
        ({k: v for k, v in BASELINE.items() if k != "real_ratio"}, r"parameter 'real_ratio' is missing"),
        ({**BASELINE, "sac.lr": 3e-4}, r"keys \['sac\.lr'\] are not parameters of this space"),
        ({**BASELINE, "sac.batch_size": 128}, r"parameter 'sac\.batch_size': 128 is not the fixed value 256"),
    ]
    for point, pattern in cases:
        with pytest.raises(SearchSpaceError, match=pattern):
            space.encode(point)


def test_project_clips_into_the_space_and_repairs_constraints(space: SearchSpace) -> None:
    far = {**BASELINE, "lam": 50.0, "rollout.horizon": 80, "num_models": 4, "num_elites": 9, "other": 1}
    assert space.project(far) == {
        **BASELINE,
        "lam": 10.0,
        "rollout.horizon": 50,
        "num_models": 4,
        "num_elites": 4,
        "sac.batch_size": 256,
    }
    with pytest.raises(SearchSpaceError, match="'penalty': 'loo_kl' is not allowed"):
        space.project({**BASELINE, "penalty": "loo_kl"})


def test_random_samples_respect_bounds_scales_branches_and_constraints(space: SearchSpace) -> None:
    rng = np.random.default_rng(0)
    samples = [space.sample_random(rng) for _ in range(3000)]
    for s in samples:
        assert space.decode(space.encode(s)) == s  # encode validates bounds, types and constraints
        assert ("lam" in s) == (s["penalty"] != "none")
    ensemble_std = np.array([s["lam"] for s in samples if s["penalty"] == "ensemble_std"])
    # log-uniform on [0.01, 100]: a quarter of the mass in each decade
    decades = np.histogram(np.log10(ensemble_std), bins=[-2, -1, 0, 1, 2])[0] / len(ensemble_std)
    assert np.all(np.abs(decades - 0.25) < 0.05), decades
    horizons = np.array([s["rollout.horizon"] for s in samples])
    assert horizons.min() == 1 and horizons.max() <= 50 and np.median(horizons) < 12  # log scale: median ~7
    assert {s["penalty"] for s in samples} == {"max_aleatoric", "ensemble_std", "none"}
    elites, models = np.array([[s["num_elites"], s["num_models"]] for s in samples]).T
    assert np.all(elites <= models) and elites.min() == 1 and models.max() == 10


def test_random_sampling_is_reproducible(space: SearchSpace) -> None:
    first = [space.sample_random(np.random.default_rng(7)) for _ in range(3)]
    again = [space.sample_random(np.random.default_rng(7)) for _ in range(3)]
    assert first == again


def test_optuna_define_by_run_space_is_conditional_and_repairs_constraints(space: SearchSpace) -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    points = []
    for _ in range(200):
        trial = study.ask()
        point = space.optuna_space(trial)
        study.tell(trial, 0.0)
        points.append((trial.params, point))
    for raw, point in points:
        assert space.decode(space.encode(point)) == point  # within bounds, constraint holds
        branch = f"lam__{point['penalty']}"
        assert [k for k in raw if k.startswith("lam__")] == ([branch] if "lam" in point else [])
        assert point["num_elites"] == min(raw["num_elites"], raw["num_models"])
    # The distributions used to add scored points match what the define-by-run function suggests.
    distributions = optuna_distributions(space)
    assert distributions["lam__ensemble_std"] == optuna.distributions.FloatDistribution(0.01, 100.0, log=True)
    assert distributions["penalty"] == optuna.distributions.CategoricalDistribution(
        ["max_aleatoric", "ensemble_std", "none"]
    )


def test_choice_values_keep_their_types(tmp_path: Path) -> None:
    text = """
parameters:
  model.hidden: {choice: [64, 128, 256]}
  model.act: {choice: [relu, swish], ordered: false}
  model.ratio: {choice: [0.5, 1]}
  sac.auto_alpha: {choice: [true, false]}
"""
    space = load_text(tmp_path, text, "types.yaml")
    kinds = {c.name: (c.parameter_type, c.is_ordered) for c in ax_parameters(space)}
    assert kinds == {
        "model.hidden": ("int", True),
        "model.act": ("str", False),
        "model.ratio": ("float", True),
        "sac.auto_alpha": ("bool", False),
    }
    point = {"model.hidden": 128, "model.act": "swish", "model.ratio": 1, "sac.auto_alpha": False}
    assert space.decode(space.encode(point)) == {**point, "model.ratio": 1.0}
    with pytest.raises(SearchSpaceError, match="'sac.auto_alpha': 0 is not allowed"):
        space.encode({**point, "sac.auto_alpha": 0})  # 0 == False in Python, but not a bool
    assert math.isclose(space.sample_random(np.random.default_rng(0))["model.ratio"] % 0.5, 0.0)
