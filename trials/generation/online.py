"""Online SAC in a real MuJoCo environment: trains behaviour policies for dataset generation and
records every transition it takes (with the simulator state), which is D4RL's medium-replay data."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from trials.agent.sac import SAC, SACConfig
from trials.envs import EnvSpec, get_state
from trials.measure.evaluation import evaluate
from trials.models.nets import seeded
from trials.rollouts.replay import ReplayBuffer


class TransitionLog:
    """Transitions as taken, in D4RL's fields, in preallocated arrays.

    Preallocated rather than lists of small arrays: thousands of small long-lived objects interleaved
    with SAC's large temporaries fragment the heap (measured: +150 KB RSS per env step)."""

    def __init__(self, capacity: int, obs_dim: int, act_dim: int, qpos_dim: int, qvel_dim: int) -> None:
        self.size = 0
        self._arrays = {
            "observations": np.empty((capacity, obs_dim), np.float32),
            "actions": np.empty((capacity, act_dim), np.float32),
            "rewards": np.empty(capacity, np.float32),
            "next_observations": np.empty((capacity, obs_dim), np.float32),
            "terminals": np.empty(capacity, bool),
            "timeouts": np.empty(capacity, bool),
            "qpos": np.empty((capacity, qpos_dim), np.float64),
            "qvel": np.empty((capacity, qvel_dim), np.float64),
        }

    @classmethod
    def for_env(cls, spec: EnvSpec, capacity: int) -> TransitionLog:
        return cls(capacity, spec.obs_dim, spec.act_dim, spec.qpos_dim, spec.qvel_dim)

    def append(self, obs: np.ndarray, act: np.ndarray, rew: float, next_obs: np.ndarray, terminal: bool,
               timeout: bool, qpos: np.ndarray, qvel: np.ndarray) -> None:
        i = self.size
        a = self._arrays
        a["observations"][i] = obs
        a["actions"][i] = act
        a["rewards"][i] = rew
        a["next_observations"][i] = next_obs
        a["terminals"][i] = terminal
        a["timeouts"][i] = timeout
        a["qpos"][i] = qpos
        a["qvel"][i] = qvel
        self.size = i + 1

    def __len__(self) -> int:
        return self.size

    def arrays(self) -> dict[str, np.ndarray]:
        """The filled part of every field (copies)."""
        return {k: v[:self.size].copy() for k, v in self._arrays.items()}


@dataclass
class OnlineResult:
    agent: SAC
    log: TransitionLog
    """Every transition taken (the run's whole replay history)."""
    evaluations: list[tuple[int, float]]
    """(env steps, mean deterministic evaluation return)."""
    steps: int
    reached: bool
    """Whether ``stop_return`` was reached (False when no target was set)."""


def train_online(spec: EnvSpec, cfg: SACConfig, max_steps: int, seed: int, *, learning_starts: int = 5000,
                 eval_every: int = 5000, eval_episodes: int = 5, stop_return: float | None = None,
                 device: str = "cpu", progress: bool = True,
                 on_eval: Callable[[int, float], None] | None = None) -> OnlineResult:
    """Train SAC online for at most ``max_steps`` env steps, one update per step after
    ``learning_starts`` uniformly random steps; stop early when the evaluation return reaches
    ``stop_return``. Deterministic given ``seed`` on one machine."""
    gen = torch.Generator(device=device).manual_seed(seed)
    env = spec.make()
    env.action_space.seed(seed)
    with seeded(seed, device):
        agent = SAC(spec.obs_dim, spec.act_dim, cfg, device, seed=seed + 1)
    buffer = ReplayBuffer(max_steps, spec.obs_dim, spec.act_dim, device)
    log = TransitionLog.for_env(spec, max_steps)
    evaluations: list[tuple[int, float]] = []
    obs, _ = env.reset(seed=seed)
    qpos, qvel = get_state(env)
    reached = False
    bar = tqdm(total=max_steps, desc=f"SAC {spec.name}", disable=not progress, unit="step", leave=False)
    step = 0
    try:
        for step in range(1, max_steps + 1):
            if step <= learning_starts:
                action = env.action_space.sample()
            else:
                action = agent.act_numpy(obs)
            next_obs, reward, terminated, truncated, _ = env.step(action)
            log.append(obs, action, float(reward), next_obs, bool(terminated), bool(truncated), qpos, qvel)
            buffer.add(obs, action, float(reward), next_obs, bool(terminated))
            if terminated or truncated:
                obs, _ = env.reset()
            else:
                obs = next_obs
            qpos, qvel = get_state(env)
            if step > learning_starts:
                agent.update(*buffer.sample(cfg.batch_size, gen))
            if eval_every and step % eval_every == 0:
                ret = float(evaluate(agent, spec, eval_episodes, seed=10_000 + step).mean())
                evaluations.append((step, ret))
                bar.set_postfix(eval_return=f"{ret:.0f}")
                if on_eval is not None:
                    on_eval(step, ret)
                if stop_return is not None and ret >= stop_return:
                    reached = True
                    break
            bar.update(1)
    finally:
        bar.close()
        env.close()
    return OnlineResult(agent, log, evaluations, step, reached)
