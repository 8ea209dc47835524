"""A Minari dataset present locally loads into the D4RL schema (nothing is downloaded)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trials.data.dataset import DatasetError, load_dataset
from trials.envs import ENVS


def test_local_minari_dataset_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    minari = pytest.importorskip("minari")
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    from minari.data_collector import EpisodeBuffer

    env = ENVS["hopper"].make()
    env.action_space.seed(0)
    episodes = []
    for ep in range(6):  # real random-play episodes, recorded by hand (the DataCollector needs jax)
        obs, _ = env.reset(seed=ep)
        o, a, r, te, tr = [obs], [], [], [], []
        done = False
        while not done:
            action = env.action_space.sample()
            obs, reward, term, trunc, _ = env.step(action)
            o.append(obs), a.append(action), r.append(reward), te.append(term), tr.append(trunc)
            done = term or trunc
        episodes.append(EpisodeBuffer(id=ep, observations=np.array(o), actions=np.array(a), rewards=r,
                                      terminations=te, truncations=tr, infos={}))
    minari.create_dataset_from_buffers("mbrltune/hopper-test-v0", episodes, env=env, algorithm_name="random")
    env.close()
    steps = sum(len(e.rewards) for e in episodes)

    ds = load_dataset("minari:mbrltune/hopper-test-v0", env="hopper")
    assert ds.meta.env == "hopper" and ds.meta.generator_version == "external"
    assert len(ds) == steps and ds.observations.shape[1] == 11
    cont = ~(ds.terminals | ds.timeouts)[:-1]
    assert np.array_equal(ds.next_observations[:-1][cont], ds.observations[1:][cont])
    assert np.array_equal(ENVS["hopper"].terminated(ds.next_observations), ds.terminals)


def test_missing_minari_dataset_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("minari")
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    with pytest.raises(DatasetError, match="minari:nobody/none-v0: cannot load locally") as err:
        load_dataset("minari:nobody/none-v0", env="hopper")
    assert "\n" not in str(err.value)
