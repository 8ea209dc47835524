"""Dataset generation: every level, the policy cache, determinism."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trials.envs import ENVS
from trials.generation.generate import LEVELS, generate
from trials.generation.settings import LEVEL_NAMES, GenerateConfig

TINY = GenerateConfig(medium_max_steps=600, expert_steps=700, learning_starts=200, eval_every=300,
                      eval_episodes=1)


@pytest.fixture(scope="module")
def policy_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("behaviour")


def test_every_level_makes_valid_data_and_reuses_policies(policy_dir: Path) -> None:
    spec = ENVS["hopper"]
    medium = generate(spec, "medium", 500, 0, TINY, policy_dir, progress=False)
    cached = sorted(p.name for p in policy_dir.iterdir())
    assert len(cached) == 2 and any(n.endswith("-replay.npz") for n in cached)
    mtimes = {p: p.stat().st_mtime_ns for p in policy_dir.iterdir()}

    replay = generate(spec, "medium-replay", 10_000, 0, TINY, policy_dir, progress=False)
    assert len(replay) == 600, "medium-replay is the medium run's whole history"
    both = generate(spec, "medium-expert", 800, 0, TINY, policy_dir, progress=False)
    assert len(both) == 800
    # medium was not retrained: its files are untouched; only the expert policy was added.
    assert all(p.stat().st_mtime_ns == t for p, t in mtimes.items())
    assert len(list(policy_dir.iterdir())) == 3
    assert np.array_equal(both.observations[:400], generate(spec, "medium", 400, 0, TINY, policy_dir,
                                                            progress=False).observations)
    for ds in (medium, replay, both):
        ds.validate()
        assert np.isfinite(ds.meta.behaviour_normalized_score)


def test_generation_is_deterministic(policy_dir: Path) -> None:
    a = generate(ENVS["walker2d"], "random", 300, 5, TINY, policy_dir, progress=False)
    b = generate(ENVS["walker2d"], "random", 300, 5, TINY, policy_dir, progress=False)
    assert a.content_hash() == b.content_hash()
    assert a.qpos.shape == (300, 9)


def test_unknown_level(policy_dir: Path) -> None:
    assert tuple(LEVELS) == LEVEL_NAMES  # the light list the CLI and studies check levels against
    with pytest.raises(ValueError, match="known: " + ", ".join(LEVELS)):
        generate(ENVS["hopper"], "novice", 10, 0, TINY, policy_dir)


def test_committed_behaviour_policy_keeps_its_cache_key() -> None:
    """The evidence study's committed policy is found under today's defaults (a new SAC option at its
    default must not change the key: list it in LATER_SAC_FIELDS), and a changed setting is another key."""
    from trials.agent.sac import SACConfig
    from trials.generation.generate import _cache_key

    committed = Path(__file__).resolve().parents[2] / "docs/results/behaviour"
    key = _cache_key(ENVS["hopper"], "medium", 0, GenerateConfig())
    assert (committed / f"{key}.pt").is_file(), f"{key}.pt not in {sorted(p.name for p in committed.iterdir())}"
    for changed in ({"num_critics": 10}, {"target_floor": 0.0}, {"tau": 0.01}):
        cfg = GenerateConfig(sac=SACConfig(**changed))
        assert _cache_key(ENVS["hopper"], "medium", 0, cfg) != key, changed


#: Content hash of 2,000 hopper-medium transitions collected (seed 0) with the committed behaviour policy,
#: generator version 2, recorded on an AMD EPYC with AVX512-BF16 (2026-12-05). Any other CPU that runs
#: this test checks that a stored policy makes the same file there (trials.generation.generate: portable collection);
#: the float32 collection of version 1 made a different hopper-medium-100k on a Xeon with AMX.
PORTABLE_HOPPER_MEDIUM_2K = "c4f6a43aa3cc23f5"


def test_a_stored_policy_regenerates_the_same_file_bit_for_bit(tmp_path: Path) -> None:
    import shutil

    from trials.data.dataset import GENERATOR_VERSION, load_dataset, save_hdf5

    committed = Path(__file__).resolve().parents[2] / "docs/results/behaviour"
    policies = tmp_path / "behaviour"
    policies.mkdir()
    for policy in committed.glob("*.pt"):
        shutil.copy(policy, policies)
    first = generate(ENVS["hopper"], "medium", 2000, 0, GenerateConfig(), policies, progress=False)
    save_hdf5(first, tmp_path / "a.hdf5")
    again = load_dataset(tmp_path / "a.hdf5")
    second = generate(ENVS["hopper"], "medium", 2000, 0, GenerateConfig(), policies, progress=False)
    assert GENERATOR_VERSION == "2" and again.meta.generator_version == "2"
    assert first.content_hash() == again.content_hash() == second.content_hash()
    assert first.content_hash() == PORTABLE_HOPPER_MEDIUM_2K, (
        f"this CPU made {first.content_hash()} from the committed policy; the recorded file is "
        f"{PORTABLE_HOPPER_MEDIUM_2K}")
    assert sorted(p.name for p in policies.iterdir()) == sorted(p.name for p in committed.glob("*.pt")), \
        "the committed policy was used, not retrained"


def test_stored_actions_rebuild_a_dataset_exactly(policy_dir: Path) -> None:
    """``replay``: the actions of a dataset, taken again from the same start, make the same file (MuJoCo
    steps the same on every CPU; this is how a version 1 file is rebuilt on a CPU whose policy forward differs)."""
    from trials.generation.generate import replay

    made = generate(ENVS["hopper"], "medium", 700, 3, TINY, policy_dir, progress=False)
    again = replay(ENVS["hopper"], "medium", 3, made.actions, "1", progress=False)
    assert again.content_hash() == made.content_hash() and again.meta.generator_version == "1"
    assert again.meta.behaviour_return == made.meta.behaviour_return
