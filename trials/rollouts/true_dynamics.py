"""The real simulator as the rollout model (``dynamics.kind: true``): the edge-of-reach test.

Sims et al. (2024) replace the learned model by the true dynamics: with short rollouts from dataset
states, uncertainty-penalty methods then have nothing to penalise and their Q-values explode at the edge
of the reachable states, while RAVL's critic ensemble does not. Here a rollout round starts from dataset
rows at their exact simulator state (the stored ``infos/qpos``/``infos/qvel``) and steps MuJoCo itself:
all live rows of a step go through one ``mujoco.rollout`` call (C, no Python per row), each action held
for the env's ``frame_skip`` physics steps as Gymnasium's ``do_simulation`` does. Observations, rewards and
termination are the Gymnasium v5 env's own, computed for the batch: ``[qpos[1:], qvel]`` (velocities
clipped where the env clips them), ``w_fwd * dx/dt - w_ctrl * ||a||^2 + r_healthy * healthy``, with the
weights read from the env object, and ``healthy`` from ``EnvSpec.terminated``. The test checks every
quantity against ``env.step`` after ``set_state``.
"""

from __future__ import annotations

import mujoco
import numpy as np
import torch
from mujoco import rollout as mj_rollout

from trials.agent.sac import SAC
from trials.envs import VELOCITY_CLIP, EnvSpec
from trials.rollouts.replay import ReplayBuffer
from trials.rollouts.rollout import RolloutStats

STATE_SPEC = mujoco.mjtState.mjSTATE_FULLPHYSICS


class Simulator:
    """Batched one-step transitions of a MuJoCo locomotion task from full simulator states."""

    def __init__(self, spec: EnvSpec) -> None:
        if spec.name not in VELOCITY_CLIP:
            raise ValueError(f"env '{spec.name}': no batched simulator rule; known: {', '.join(VELOCITY_CLIP)}")
        env = spec.make()
        env.reset(seed=0)
        u = env.unwrapped
        self.spec = spec
        self.model = u.model  # type: ignore[attr-defined]
        self.data = mujoco.MjData(self.model)
        self.frame_skip = int(u.frame_skip)  # type: ignore[attr-defined]
        self.dt = float(u.dt)  # type: ignore[attr-defined]
        self.forward_weight = float(u._forward_reward_weight)  # type: ignore[attr-defined]
        self.ctrl_weight = float(u._ctrl_cost_weight)  # type: ignore[attr-defined]
        self.healthy_reward = float(getattr(u, "_healthy_reward", 0.0))
        self.velocity_clip = VELOCITY_CLIP[spec.name]
        self.nq, self.nv = self.model.nq, self.model.nv
        self.template = np.empty(mujoco.mj_stateSize(self.model, STATE_SPEC))
        mujoco.mj_getState(self.model, u.data, self.template, STATE_SPEC)  # type: ignore[attr-defined]
        env.close()

    def observe(self, qpos: np.ndarray, qvel: np.ndarray) -> np.ndarray:
        """The env's observation of states ``[B, nq]``, ``[B, nv]``."""
        if self.velocity_clip is not None:
            qvel = np.clip(qvel, -self.velocity_clip, self.velocity_clip)
        return np.concatenate([qpos[:, 1:], qvel], axis=1)

    def step(self, qpos: np.ndarray, qvel: np.ndarray, act: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Next ``qpos``, ``qvel``, observation, reward and termination for ``B`` rows (float64; the
        termination as bool)."""
        states = np.tile(self.template, (qpos.shape[0], 1))
        states[:, 1:1 + self.nq] = qpos
        states[:, 1 + self.nq:1 + self.nq + self.nv] = qvel
        control = np.repeat(np.asarray(act, dtype=np.float64)[:, None, :], self.frame_skip, axis=1)
        out, _ = mj_rollout.rollout(self.model, self.data, states, control)
        last = out[:, -1]
        next_qpos = last[:, 1:1 + self.nq].copy()
        next_qvel = last[:, 1 + self.nq:1 + self.nq + self.nv].copy()
        obs = self.observe(next_qpos, next_qvel)
        done = np.asarray(self.spec.terminated(obs), dtype=bool)
        x_velocity = (next_qpos[:, 0] - qpos[:, 0]) / self.dt
        reward = (self.forward_weight * x_velocity - self.ctrl_weight * np.square(act).sum(1)
                  + self.healthy_reward * ~done)
        return next_qpos, next_qvel, obs, reward, done


@torch.no_grad()
def true_rollout(sim: Simulator, agent: SAC, start_obs: torch.Tensor, start_qpos: np.ndarray,
                 start_qvel: np.ndarray, horizon: int, buffer: ReplayBuffer) -> RolloutStats:
    """Roll out ``horizon`` simulator steps with the current policy from every start row and append the
    transitions (true rewards, no penalty) to ``buffer``. A row whose state turns non-finite ends there."""
    device = start_obs.device
    obs = start_obs
    qpos, qvel = np.asarray(start_qpos, dtype=np.float64), np.asarray(start_qvel, dtype=np.float64)
    n_start = start_obs.shape[0]
    count, ended, nonfinite, rew_sum = 0, 0, 0, 0.0
    for _ in range(horizon):
        if obs.shape[0] == 0:
            break
        act = agent.act(obs)
        act_np = act.cpu().numpy().astype(np.float64)
        qpos, qvel, next_np, rew, done = sim.step(qpos, qvel, act_np)
        finite = np.isfinite(next_np).all(1) & np.isfinite(rew)
        nonfinite += int((~finite).sum())
        keep = torch.as_tensor(finite, device=device)
        next_obs = torch.as_tensor(next_np, dtype=torch.float32, device=device)
        rew_t = torch.as_tensor(rew, dtype=torch.float32, device=device)
        done_t = torch.as_tensor(done, dtype=torch.float32, device=device)
        buffer.add_batch(obs[keep], act[keep], rew_t[keep], next_obs[keep], done_t[keep])
        count += int(finite.sum())
        ended += int((finite & done).sum())
        rew_sum += float(rew[finite].sum())
        alive = finite & ~done
        obs, qpos, qvel = next_obs[torch.as_tensor(alive, device=device)], qpos[alive], qvel[alive]
    return RolloutStats(transitions=count, penalty_mean=0.0, penalty_max=0.0,
                        raw_reward_mean=rew_sum / max(count, 1), terminated_fraction=ended / max(n_start, 1),
                        mean_length=count / max(n_start, 1), nonfinite=nonfinite)

