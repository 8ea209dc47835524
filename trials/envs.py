"""Environment registry: the MuJoCo tasks a dataset can come from, their D4RL reference scores and
their true termination rules as vectorised functions for model rollouts.

The termination rules restate Gymnasium's v5 ``is_healthy`` checks on the *next observation* (with
``exclude_current_positions_from_observation=True``, the default): a model rollout must stop exactly
where the real environment would, or hopper and walker2d scores collapse (d3rlpy issue 101).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np

if TYPE_CHECKING:  # torch and Gymnasium load where a rule runs or an env is made, not with the registry
    import gymnasium as gym
    import torch

Array: TypeAlias = "np.ndarray | torch.Tensor"
TerminationFn: TypeAlias = "Callable[[Array], Array]"


def _all(x: Array) -> Array:
    return np.all(x, axis=-1) if isinstance(x, np.ndarray) else x.all(-1)


def _isfinite(x: Array) -> Array:
    return np.isfinite(x) if isinstance(x, np.ndarray) else x.isfinite()


def hopper_terminated(next_obs: Array) -> Array:
    """Hopper-v5: unhealthy when any of obs[1:] leaves (-100, 100), height obs[0] <= 0.7, or
    |torso angle obs[1]| >= 0.2. Works on numpy arrays and torch tensors of shape [..., 11]."""
    z, angle = next_obs[..., 0], next_obs[..., 1]
    rest = next_obs[..., 1:]
    healthy = _all((rest > -100.0) & (rest < 100.0)) & (z > 0.7) & (angle > -0.2) & (angle < 0.2)
    return ~(healthy & _all(_isfinite(next_obs)))


def walker2d_terminated(next_obs: Array) -> Array:
    """Walker2d-v5: unhealthy when the height obs[0] leaves (0.8, 2.0) or the angle obs[1] leaves
    (-1, 1). Works on numpy arrays and torch tensors of shape [..., 17]."""
    z, angle = next_obs[..., 0], next_obs[..., 1]
    healthy = (z > 0.8) & (z < 2.0) & (angle > -1.0) & (angle < 1.0)
    return ~(healthy & _all(_isfinite(next_obs)))


def never_terminated(next_obs: Array) -> Array:
    """HalfCheetah and InvertedPendulum-free tasks: only non-finite states end an episode."""
    return ~_all(_isfinite(next_obs))


def inverted_pendulum_terminated(next_obs: Array) -> Array:
    """InvertedPendulum-v5: terminated when |pole angle obs[1]| > 0.2 or the state is not finite."""
    return ~(_all(_isfinite(next_obs)) & (abs(next_obs[..., 1]) <= 0.2))


@dataclass(frozen=True)
class EnvSpec:
    """One task: how to build it, its dimensions and the facts a trial needs about it."""

    name: str
    """Short name used in dataset files and configs, e.g. ``hopper``."""
    gym_id: str
    """Gymnasium id of the real environment used for data generation and evaluation."""
    obs_dim: int
    act_dim: int
    terminated: TerminationFn
    """The true termination rule on next observations, numpy or torch, batched over leading dims."""
    random_score: float | None
    """D4RL REF_MIN_SCORE (return of a random policy), None where D4RL has no reference."""
    expert_score: float | None
    """D4RL REF_MAX_SCORE (return of the D4RL expert policy)."""
    max_episode_steps: int = 1000
    qpos_dim: int = 0
    qvel_dim: int = 0

    def make(self, **kwargs: Any) -> gym.Env:
        """A fresh real environment (time limit included), actions rescaled to [-1, 1] (the tanh
        policy's range; a no-op for the D4RL tasks, whose bounds already are [-1, 1])."""
        import gymnasium as gym  # noqa: PLC0415  (slow import: only where an env is made)

        env = gym.make(self.gym_id, **kwargs)
        low, high = env.action_space.low, env.action_space.high  # type: ignore[attr-defined]
        if not (np.all(low == -1.0) and np.all(high == 1.0)):
            env = gym.wrappers.RescaleAction(env, -1.0, 1.0)
        return env

    def normalized_score(self, ret: float | np.ndarray) -> float | np.ndarray:
        """D4RL normalisation: 100 * (return - random) / (expert - random)."""
        if self.random_score is None or self.expert_score is None:
            raise ValueError(f"env '{self.name}' has no D4RL reference scores")
        return 100.0 * (ret - self.random_score) / (self.expert_score - self.random_score)


# Reference scores: REF_MIN_SCORE / REF_MAX_SCORE from d4rl/infos.py (Farama-Foundation/D4RL), as
# listed in docs/reference.md; v1/v2 datasets reuse the v0 values.
ENVS: dict[str, EnvSpec] = {
    "hopper": EnvSpec("hopper", "Hopper-v5", 11, 3, hopper_terminated, -20.272305, 3234.3,
                      qpos_dim=6, qvel_dim=6),
    "halfcheetah": EnvSpec("halfcheetah", "HalfCheetah-v5", 17, 6, never_terminated, -280.178953, 12135.0,
                           qpos_dim=9, qvel_dim=9),
    "walker2d": EnvSpec("walker2d", "Walker2d-v5", 17, 6, walker2d_terminated, 1.629008, 4592.3,
                        qpos_dim=9, qvel_dim=9),
    # Not a D4RL task: a quick check that SAC learns (used by the tests).
    "inverted_pendulum": EnvSpec("inverted_pendulum", "InvertedPendulum-v5", 4, 1,
                                 inverted_pendulum_terminated, None, None, qpos_dim=2, qvel_dim=2),
}

#: Per locomotion env: the bound its Gymnasium v5 observation clips velocities to (None: not clipped).
VELOCITY_CLIP: dict[str, float | None] = {"hopper": 10.0, "walker2d": 10.0, "halfcheetah": None}

#: The tasks datasets can be made for (D4RL's locomotion suite).
DATASET_ENVS = ("hopper", "halfcheetah", "walker2d")


def get_env_spec(name: str) -> EnvSpec:
    """The spec for ``name``; an unknown name raises a ValueError listing the known ones."""
    try:
        return ENVS[name]
    except KeyError:
        raise ValueError(f"unknown env '{name}'; known: {', '.join(ENVS)}") from None


def get_state(env: gym.Env) -> tuple[np.ndarray, np.ndarray]:
    """The simulator state (qpos, qvel) of a MuJoCo env, copied."""
    data = env.unwrapped.data  # type: ignore[attr-defined]
    return data.qpos.copy(), data.qvel.copy()


def set_state(env: gym.Env, qpos: np.ndarray, qvel: np.ndarray) -> None:
    """Reset the simulator to (qpos, qvel): with the stored D4RL ``infos/qpos``/``infos/qvel`` this
    gives the exact state behind an observation, velocities unclipped."""
    env.unwrapped.set_state(qpos, qvel)  # type: ignore[attr-defined]
