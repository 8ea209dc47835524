"""SAC learns a real MuJoCo task and is deterministic given its seed."""

from __future__ import annotations

import numpy as np
import torch

from trials.agent.sac import SAC, SACConfig
from trials.envs import ENVS
from trials.generation.online import train_online


def test_sac_learns_inverted_pendulum() -> None:
    spec = ENVS["inverted_pendulum"]
    result = train_online(spec, SACConfig(hidden=64), max_steps=6000, seed=0, learning_starts=1000,
                          eval_every=1000, eval_episodes=3, progress=False)
    first, best = result.evaluations[0][1], max(r for _, r in result.evaluations)
    # A random or untrained policy balances for about 5-10 steps; a learning one several times longer.
    assert first < 20
    assert best >= 90, result.evaluations


def test_sac_update_is_deterministic() -> None:
    def run() -> list[torch.Tensor]:
        torch.manual_seed(3)
        agent = SAC(11, 3, SACConfig(hidden=32))
        gen = torch.Generator().manual_seed(1)
        batch = [torch.randn(64, 11, generator=gen), torch.rand(64, 3, generator=gen) * 2 - 1,
                 torch.randn(64, generator=gen), torch.randn(64, 11, generator=gen), torch.zeros(64)]
        for _ in range(5):
            agent.update(*batch)
        return [p.detach().clone() for p in agent.parameters()]

    for a, b in zip(run(), run(), strict=False):
        assert torch.equal(a, b)


def test_stats_track_losses_and_flag_divergence() -> None:
    agent = SAC(3, 1, SACConfig(hidden=16, batch_size=8))
    stats = agent.new_stats()
    obs = torch.randn(8, 3)
    agent.update(obs, torch.zeros(8, 1), torch.ones(8), obs, torch.zeros(8), stats)
    assert stats.updates == 1 and stats.finite()
    agent.update(obs, torch.zeros(8, 1), torch.full((8,), float("nan")), obs, torch.zeros(8), stats)
    assert not stats.finite()
    assert np.isnan(stats.means()["critic_loss"])
