"""Dataset files: round trip, D4RL's own layout, and every validation error."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from trials.data.dataset import Dataset, DatasetError, load_dataset, load_hdf5, save_hdf5, summary
from trials.envs import ENVS


def test_round_trip_keeps_every_field(hopper_random: Dataset, tmp_path: Path) -> None:
    out = save_hdf5(hopper_random, tmp_path / "copy.hdf5")
    again = load_hdf5(out)
    for name in ("observations", "actions", "rewards", "next_observations", "terminals", "timeouts",
                 "qpos", "qvel"):
        assert np.array_equal(getattr(again, name), getattr(hopper_random, name)), name
    assert again.meta == hopper_random.meta
    assert again.content_hash() == hopper_random.content_hash()
    assert list(tmp_path.iterdir()) == [out], "no temporary file is left behind"


def test_generated_random_data_is_consistent_with_mujoco(hopper_random: Dataset) -> None:
    spec = ENVS["hopper"]
    assert len(hopper_random) == 3000
    assert hopper_random.meta.level == "random" and hopper_random.meta.env == "hopper"
    # Terminal flags follow the env's rule, and qpos/qvel reproduce the stored observation.
    assert np.array_equal(spec.terminated(hopper_random.next_observations), hopper_random.terminals)
    assert np.allclose(hopper_random.qpos[:, 1:], hopper_random.observations[:, :5], atol=1e-6)
    # Consecutive transitions chain unless an episode ended.
    cont = ~(hopper_random.terminals | hopper_random.timeouts)[:-1]
    assert np.array_equal(hopper_random.next_observations[:-1][cont], hopper_random.observations[1:][cont])
    info = summary(hopper_random)
    assert info["episodes"] == hopper_random.terminals.sum() + (not hopper_random.terminals[-1])
    assert -5 < hopper_random.meta.behaviour_normalized_score < 5  # random play scores about 0


def _write_d4rl_style(path: Path, ds: Dataset, drop: str | None = None, **replace: np.ndarray) -> Path:
    """A file laid out exactly like D4RL's own (no metadata attributes)."""
    with h5py.File(path, "w") as f:
        for name in ("observations", "actions", "rewards", "next_observations", "terminals", "timeouts"):
            if name != drop:
                f[name] = replace.get(name, getattr(ds, name))
        f["infos/qpos"] = replace.get("qpos", ds.qpos)
        f["infos/qvel"] = replace.get("qvel", ds.qvel)
    return path


def test_d4rl_file_without_metadata_takes_env_from_name(hopper_random: Dataset, tmp_path: Path) -> None:
    path = _write_d4rl_style(tmp_path / "hopper_medium-v2.hdf5", hopper_random)
    ds = load_dataset(path)
    assert ds.meta.env == "hopper" and ds.meta.generator_version == "external"
    assert len(ds) == len(hopper_random)


def _bad_cases(ds: Dataset) -> dict[str, tuple[dict, str]]:
    nan_obs = ds.observations.copy()
    nan_obs[7, 2] = np.nan
    return {
        "short actions": ({"actions": ds.actions[:-1]}, "field 'actions': length 2999 differs"),
        "wrong obs dim": ({"observations": ds.observations[:, :5], "next_observations": ds.next_observations[:, :5]},
                          r"field 'observations': shape \(3000, 5\), expected \(N, 11\)"),
        "nan": ({"observations": nan_obs}, "field 'observations': non-finite value at row 7"),
        "wrong qpos dim": ({"qpos": ds.qpos[:, :3]}, r"field 'infos/qpos': shape \(3000, 3\)"),
        "inf reward": ({"rewards": np.where(np.arange(len(ds)) == 3, np.inf, ds.rewards)},
                       "field 'rewards': non-finite value at row 3"),
    }


@pytest.mark.parametrize("case", ["short actions", "wrong obs dim", "nan", "wrong qpos dim", "inf reward"])
def test_validation_errors_name_file_field_and_problem(hopper_random: Dataset, tmp_path: Path, case: str) -> None:
    replace, message = _bad_cases(hopper_random)[case]
    path = _write_d4rl_style(tmp_path / "hopper-bad.hdf5", hopper_random, **replace)
    with pytest.raises(DatasetError, match=message) as err:
        load_hdf5(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_missing_field_and_unreadable_file(hopper_random: Dataset, tmp_path: Path) -> None:
    path = _write_d4rl_style(tmp_path / "hopper-nofield.hdf5", hopper_random, drop="actions")
    with pytest.raises(DatasetError, match="field 'actions': missing"):
        load_hdf5(path)
    junk = tmp_path / "hopper-junk.hdf5"
    junk.write_text("not hdf5")
    with pytest.raises(DatasetError, match="not a readable HDF5 file"):
        load_hdf5(junk)
    with pytest.raises(DatasetError, match="file not found"):
        load_hdf5(tmp_path / "absent.hdf5")


def test_env_cannot_be_inferred(hopper_random: Dataset, tmp_path: Path) -> None:
    path = _write_d4rl_style(tmp_path / "mystery.hdf5", hopper_random)
    with pytest.raises(DatasetError, match="attribute 'env'.*pass --env"):
        load_hdf5(path)
    assert load_hdf5(path, env="hopper").meta.env == "hopper"


def test_save_refuses_invalid_data_and_writes_nothing(hopper_random: Dataset, tmp_path: Path) -> None:
    hopper_random.rewards[0] = np.nan
    with pytest.raises(DatasetError):
        save_hdf5(hopper_random, tmp_path / "out.hdf5")
    assert list(tmp_path.iterdir()) == []


def test_v0_file_rebuilds_successors_and_drops_rows_that_cross_episodes(hopper_random: Dataset,
                                                                        tmp_path: Path) -> None:
    """D4RL v0 layout (no next_observations): successors come from the next row, and the rows whose next
    row starts another episode (timeouts, the file's last row) are dropped, as OfflineRL-Kit's loader does."""
    timeouts = np.zeros(len(hopper_random), dtype=bool)
    cut = [i for i in (100, 701, 1502) if not hopper_random.terminals[i]]
    timeouts[cut] = True  # episodes cut by a time limit, as D4RL's collector marks them
    path = _write_d4rl_style(tmp_path / "hopper-random-v0.hdf5", hopper_random, drop="next_observations",
                             timeouts=timeouts)
    ds = load_hdf5(path)
    kept = np.setdiff1d(np.arange(len(hopper_random)), [*cut, len(hopper_random) - 1])
    assert len(ds) == len(kept)
    np.testing.assert_array_equal(ds.observations, hopper_random.observations[kept])
    np.testing.assert_array_equal(ds.next_observations, hopper_random.observations[kept + 1])
    np.testing.assert_array_equal(ds.qpos, hopper_random.qpos[kept])
    np.testing.assert_array_equal(ds.terminals, hopper_random.terminals[kept])
    # Where the episode goes on, the rebuilt successor is the true one the generator recorded.
    going_on = ~hopper_random.terminals[kept]
    np.testing.assert_array_equal(ds.next_observations[going_on],
                                  hopper_random.next_observations[kept][going_on])
    # No kept row points across a dropped one; the row before each cut (and before the dropped last row,
    # unless terminal) now ends its episode.
    assert ds.timeouts.sum() == len(cut) + (not hopper_random.terminals[-2])
    assert all(ds.timeouts[np.searchsorted(kept, c - 1)] for c in cut)
    assert summary(ds)["episodes"] == int((ds.terminals | ds.timeouts).sum()) + (
        not (ds.terminals | ds.timeouts)[-1])


def test_v0_file_without_timeouts_uses_the_episode_limit(hopper_random: Dataset, tmp_path: Path) -> None:
    from trials.data.dataset import episode_limit_timeouts

    terminals = np.array([0, 0, 0, 0, 1, 0, 0, 0, 0], dtype=bool)
    # Limit 3: an episode is cut at its 3rd step unless a terminal came first; a terminal restarts the count.
    assert episode_limit_timeouts(terminals, 3).nonzero()[0].tolist() == [2, 7]
    path = _write_d4rl_style(tmp_path / "hopper-random-v0.hdf5", hopper_random, drop="next_observations")
    with h5py.File(path, "a") as f:
        del f["timeouts"]
    ds = load_hdf5(path)  # random hopper episodes end long before 1,000 steps: only the last row goes
    assert len(ds) == len(hopper_random) - 1
    np.testing.assert_array_equal(ds.next_observations, hopper_random.observations[1:])


def test_d4rl_names_resolve_local_files_and_fail_clearly(hopper_random: Dataset, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """``d4rl:<env>-<level>-v<N>`` is looked up under D4RL_DATASET_DIR, then ~/.d4rl/datasets, in D4RL's
    own file naming; env and level come from the name; nothing is downloaded."""
    from trials.data.dataset import resolve_d4rl

    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("D4RL_DATASET_DIR", str(tmp_path / "d4rl"))
    with pytest.raises(DatasetError) as err:
        load_dataset("d4rl:hopper-medium-replay-v2")
    message = str(err.value)
    assert "hopper_medium_replay-v2.hdf5" in message and str(tmp_path / "d4rl") in message
    assert str(home / ".d4rl" / "datasets") in message and "nothing is downloaded" in message
    (tmp_path / "d4rl").mkdir()
    _write_d4rl_style(tmp_path / "d4rl" / "hopper_medium_replay-v2.hdf5", hopper_random)
    ds = load_dataset("d4rl:hopper-medium-replay-v2")
    assert (ds.meta.env, ds.meta.level, len(ds)) == ("hopper", "medium-replay", len(hopper_random))
    # The default folder, and a v0 file there (no next_observations: rebuilt, last row dropped).
    monkeypatch.delenv("D4RL_DATASET_DIR")
    (home / ".d4rl" / "datasets").mkdir(parents=True)
    _write_d4rl_style(home / ".d4rl" / "datasets" / "hopper_random-v0.hdf5", hopper_random, drop="next_observations")
    v0 = load_dataset("d4rl:hopper-random-v0")
    assert v0.meta.level == "random" and len(v0) < len(hopper_random)
    assert resolve_d4rl("hopper-random-v0") == home / ".d4rl" / "datasets" / "hopper_random-v0.hdf5"
    with pytest.raises(DatasetError, match="not a D4RL dataset name"):
        load_dataset("d4rl:ant-medium-v2")
