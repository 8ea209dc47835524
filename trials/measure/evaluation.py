"""Evaluation of a policy in the real MuJoCo environment."""

from __future__ import annotations

import numpy as np

from trials.agent.sac import SAC
from trials.envs import EnvSpec


def evaluate(agent: SAC, spec: EnvSpec, episodes: int, seed: int, deterministic: bool = True) -> np.ndarray:
    """Undiscounted returns of ``episodes`` full episodes (time limit included), env seeded with
    ``seed + i`` for episode ``i``."""
    env = spec.make()
    returns = np.zeros(episodes)
    try:
        for i in range(episodes):
            obs, _ = env.reset(seed=seed + i)
            done = False
            while not done:
                action = agent.act_numpy(obs, deterministic=deterministic)
                obs, reward, terminated, truncated, _ = env.step(action)
                returns[i] += float(reward)
                done = terminated or truncated
    finally:
        env.close()
    return returns
