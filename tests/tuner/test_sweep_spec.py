"""Sweep specs: base configs per dataset and the checks made before Ray starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from search_spaces.parse import load_builtin
from tuner.errors import UsageError
from tuner.run.sweep import SweepSpec, new_spec, trial_base
from tuner.store.presets import load_preset, resolve_space


def _spec(dataset: Path, storage: Path, space: str = "paper", **kw: object) -> SweepSpec:
    args = dict(name="x", storage=str(storage), space_file=resolve_space(space), datasets=[str(dataset)],
                trials=4, concurrency=1, seeds=[0], searcher="ax", num_init_trials=4, early_stop="none",
                baselines="mopo_official", warm_start=[], base=load_preset("tiny"), overrides={}, search_seed=0)
    return new_spec(**{**args, **kw})  # type: ignore[arg-type]


def test_pool_grows_to_the_largest_num_models_the_space_can_propose(hopper_random_file: Path,
                                                                    tmp_path: Path) -> None:
    spec = _spec(hopper_random_file, tmp_path)
    base = trial_base(spec, spec.datasets[0], load_builtin("paper"))
    assert base.dynamics.pool_size == 10  # paper.yaml searches num_models up to 10; tiny's pool has 5
    assert base.pool_dir == str(spec.pool_dir) and Path(base.dataset).is_absolute()


def test_spec_checks(hopper_random_file: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="unknown; known: ax, random, optuna"):
        _spec(hopper_random_file, tmp_path, searcher="bohb")
    spec = _spec(hopper_random_file, tmp_path)
    spec.root.mkdir(parents=True)
    spec.save()
    loaded = SweepSpec.load(spec.root)
    assert loaded.model_dump() == spec.model_dump() and loaded.root == spec.root
    with pytest.raises(UsageError, match="a sweep of that name exists"):
        _spec(hopper_random_file, tmp_path)
    with pytest.raises(UsageError, match="unknown preset 'huge'"):
        load_preset("huge")
