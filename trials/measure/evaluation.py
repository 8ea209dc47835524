"""Evaluation of a policy in the real MuJoCo environment."""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import torch

from trials.agent.sac import SAC
from trials.envs import EnvSpec


def evaluate(agent: SAC, spec: EnvSpec, episodes: int, seed: int, deterministic: bool = True) -> np.ndarray:
    """Undiscounted returns of ``episodes`` full episodes (time limit included), env seeded with
    ``seed + i`` for episode ``i``."""
    env = spec.make()
    act = _acting(agent, deterministic)
    returns = np.zeros(episodes)
    try:
        for i in range(episodes):
            obs, _ = env.reset(seed=seed + i)
            done = False
            while not done:
                obs, reward, terminated, truncated, _ = env.step(act(obs))
                returns[i] += float(reward)
                done = terminated or truncated
    finally:
        env.close()
    return returns


def _acting(agent: SAC, deterministic: bool) -> Callable[[np.ndarray], np.ndarray]:
    """One action per environment step. The environment steps on the host, so an agent on a GPU would move
    one row there and back per step (a launch and a sync each): its deterministic policy is copied to the
    CPU once per evaluation instead (a stochastic one keeps the agent's generator, on its device)."""
    if agent.device.type == "cpu" or not deterministic:
        return lambda obs: agent.act_numpy(obs, deterministic=deterministic)
    actor = copy.deepcopy(agent.actor).cpu()

    @torch.no_grad()
    def act(obs: np.ndarray) -> np.ndarray:
        row = torch.as_tensor(obs, dtype=torch.float32).unsqueeze(0)
        return actor(row, deterministic=True, with_log_prob=False)[0][0].numpy()

    return act
