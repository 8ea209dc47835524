"""Evaluation of a policy in the real MuJoCo environment."""

from __future__ import annotations

import numpy as np
import torch

from trials.envs import EnvSpec
from trials.sac import SAC


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
                with torch.no_grad():
                    t = torch.as_tensor(obs, dtype=torch.float32, device=agent.device).unsqueeze(0)
                    action = agent.act(t, deterministic=deterministic)[0].cpu().numpy()
                obs, reward, terminated, truncated, _ = env.step(action)
                returns[i] += float(reward)
                done = terminated or truncated
    finally:
        env.close()
    return returns
