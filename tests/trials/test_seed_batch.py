"""The seed-batched learner computes, for every seed, what that seed's own SAC computes alone; a trial's
seeds in one group train, resume and diverge each as their own."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch

from tests.trials.test_mopo import tiny_config
from trials.agent.sac import SAC, SACConfig
from trials.agent.seed_batch import SeedBatchedSAC
from trials.data.dataset import load_hdf5
from trials.run.build import build_trainer
from trials.run.mopo import DIVERGED, FINISHED
from trials.run.seed_group import SeedGroup

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


# ---------------------------------------------------------------- a trial's seeds in one group
def _trainers(dataset: Path, pool_dir: Path, seeds: tuple[int, ...] = (0, 1), **overrides: object) -> dict:
    ds = load_hdf5(dataset)
    cfg = tiny_config(dataset, pool_dir, **{"steps_per_epoch": 12, "epochs": 2, **overrides})
    return {s: build_trainer(cfg.with_overrides({"seed": s}), ds) for s in seeds}


def test_seed_group_trains_each_seed_as_it_trains_alone_at_first(hopper_random_file: Path, tmp_path: Path) -> None:
    alone = _trainers(hopper_random_file, tmp_path)
    grouped = _trainers(hopper_random_file, tmp_path)
    group = SeedGroup(grouped)
    per_seed = group.run_epoch()
    for seed, trainer in alone.items():
        m = trainer.run_epoch()
        assert per_seed[seed]["epoch"] == 1 and grouped[seed].updates == trainer.updates == 12
        assert per_seed[seed]["critic_loss"] == pytest.approx(m["critic_loss"], rel=1e-3)
        for (name, a), b in zip(trainer.agent.state_dict().items(), grouped[seed].agent.state_dict().values(),
                                strict=True):
            assert torch.allclose(a, b, rtol=1e-3, atol=1e-4), (seed, name)


def test_seed_group_resumes_from_its_checkpoint_to_the_same_results(hopper_random_file: Path,
                                                                     tmp_path: Path) -> None:
    straight = _trainers(hopper_random_file, tmp_path)
    group = SeedGroup(straight)
    while not group.done:
        group.run_epoch()

    first = _trainers(hopper_random_file, tmp_path)
    first_group = SeedGroup(first)
    first_group.run_epoch()
    saved = {"seeds": {s: copy.deepcopy(t.state_dict()) for s, t in first.items()},
             "group": copy.deepcopy(first_group.state_dict())}
    resumed = _trainers(hopper_random_file, tmp_path)
    for s, t in resumed.items():
        t.load_state_dict(saved["seeds"][s])
    resumed_group = SeedGroup(resumed)
    resumed_group.load_state_dict(saved["group"])
    while not resumed_group.done:
        resumed_group.run_epoch()
    for s in straight:
        assert [h["critic_loss"] for h in resumed[s].history] == [h["critic_loss"] for h in straight[s].history]
        assert resumed[s].history[-1]["score"] == straight[s].history[-1]["score"]


def test_a_diverged_seed_stops_alone(hopper_random_file: Path, tmp_path: Path) -> None:
    trainers = _trainers(hopper_random_file, tmp_path, seeds=(0, 1, 2), epochs=3)
    group = SeedGroup(trainers)
    with torch.no_grad():  # seed 1's critic blows up: its losses are NaN from the first update
        group.learner.critic.out.weight[2:4].fill_(float("nan"))
    while not group.done:
        group.run_epoch()
    assert trainers[1].status == DIVERGED and len(trainers[1].history) == 1
    for s in (0, 2):
        assert trainers[s].status == FINISHED and len(trainers[s].history) == 3
        assert all(math.isfinite(h["critic_loss"]) for h in trainers[s].history)


def test_trials_with_eta_or_mobile_keep_separate_learners(hopper_random_file: Path, tmp_path: Path) -> None:
    cfg = tiny_config(hopper_random_file, tmp_path)
    assert SeedGroup.supports(cfg)
    assert not SeedGroup.supports(cfg.with_overrides({"sac.num_critics": 3, "sac.eta": 1.0}))
    assert not SeedGroup.supports(cfg.with_overrides({"penalty": "mobile"}))


def test_the_batched_update_never_waits_on_the_device() -> None:
    """No host synchronisation inside the update (on a GPU one would stall every step): the profile of a
    few updates has no op that copies a value to the host, outside the optimiser (CPU's fused Adam reads
    its step count, a CPU tensor; on CUDA the step lives on the device)."""
    from torch.profiler import ProfilerActivity, profile

    learner = SeedBatchedSAC.from_agents([SAC(OBS, ACT, SACConfig(hidden=16), seed=s) for s in range(3)])
    batch = tuple(torch.stack(p) for p in zip(*_batches(0, 3), strict=True))
    learner.update(*batch)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(3):
            learner.update(*batch)
    def in_optimizer(event: object) -> bool:
        parent = event.cpu_parent  # type: ignore[attr-defined]
        while parent is not None:
            if parent.name.startswith("Optimizer.step"):
                return True
            parent = parent.cpu_parent
        return False

    events = list(prof.events())
    assert any(e.name == "aten::baddbmm" for e in events)  # the profile saw the update
    syncs = [e.name for e in events if e.name in ("aten::item", "aten::_local_scalar_dense", "aten::nonzero")
             and not in_optimizer(e)]
    assert not syncs, syncs
