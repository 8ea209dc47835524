"""The seed-batched learner computes, for every seed, what that seed's own SAC computes alone."""

from __future__ import annotations

import copy

import pytest
import torch

from trials.sac import SAC, SACConfig
from trials.seed_batch import SeedBatchedSAC

OBS, ACT, B = 6, 2, 32


def _batches(seed: int, seeds: int) -> list[tuple[torch.Tensor, ...]]:
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(B, OBS, generator=g), torch.rand(B, ACT, generator=g) * 2 - 1, torch.randn(B, generator=g),
             torch.randn(B, OBS, generator=g), (torch.rand(B, generator=g) < 0.1).float()) for _ in range(seeds)]


@pytest.mark.parametrize("cfg", [SACConfig(hidden=32), SACConfig(hidden=32, num_critics=5, target_floor=0.0,
                                                                  deterministic_backup=True)],
                         ids=["sac", "5-critics"])
def test_each_seed_matches_its_separate_learner_over_the_first_updates(cfg: SACConfig) -> None:
    alone = []
    for seed in (0, 1, 2):
        torch.manual_seed(seed)
        alone.append(SAC(OBS, ACT, cfg, seed=seed + 1))
    mine = [copy.deepcopy(a) for a in alone]
    batched = SeedBatchedSAC.from_agents(mine)
    for step in range(5):
        batches = _batches(step, 3)
        losses = batched.update(*(torch.stack(parts) for parts in zip(*batches, strict=True)))
        for s, agent in enumerate(alone):
            stats = agent.new_stats()
            agent.update(*batches[s], stats=stats)
            assert float(losses["critic_loss"][s]) == pytest.approx(float(stats.critic_loss), rel=1e-4, abs=1e-5)
            assert float(losses["actor_loss"][s]) == pytest.approx(float(stats.actor_loss), rel=1e-4, abs=1e-5)
    batched.write_back(mine)
    for s in range(3):  # every parameter of every seed, actor, critics, targets and temperature
        for (name, a), b in zip(alone[s].state_dict().items(), mine[s].state_dict().values(), strict=True):
            assert torch.allclose(a, b, rtol=1e-4, atol=1e-5), (s, name, float((a - b).abs().max()))
    assert not torch.allclose(mine[0].actor.net[0].weight, mine[1].actor.net[0].weight)  # seeds stay apart


def test_mixed_configs_and_eta_are_refused() -> None:
    with pytest.raises(ValueError, match="one SAC config"):
        SeedBatchedSAC.from_agents([SAC(OBS, ACT, SACConfig(hidden=8)), SAC(OBS, ACT, SACConfig(hidden=16))])
    with pytest.raises(ValueError, match="eta > 0"):
        SeedBatchedSAC.from_agents([SAC(OBS, ACT, SACConfig(hidden=8, num_critics=3, eta=1.0))])
