"""Uncertainty calibration: every penalty heuristic beside the true error of the learned model.

From ``states`` dataset states, a policy rolls out ``horizon`` steps in the learned model exactly as a
trial's rollouts do (next state sampled from a random elite, stop at the env's true termination rule).
At every step, for the state ``s`` reached and the action ``a`` taken, we record:

- every heuristic of :data:`trials.rollouts.penalties.PENALTIES` (``none`` excepted) computed from the trial's
  ``num_models`` members' prediction at ``(s, a)``, with the sample and sampled member the rollout used;
- the TRUE next state ``s'``: the real MuJoCo simulator put in the state behind ``s``
  (:func:`trials.envs.set_state`) and stepped with ``a``;
- ``true_error = ||s + mean_i(mu_i)[:obs] - s'||``: the L2 error of the ensemble's mean prediction
  (mean over the N members), the quantity an uncertainty estimate should track; ``sample_error`` is the
  same for the sampled next state the rollout actually continues from (it adds the sampled noise), and
  ``reward_error`` is ``|mean_i(mu_i)[r] - r_true|``.

Where the simulator state comes from (``exact`` flags each row):

- step 1 starts at dataset states: their stored ``infos/qpos``/``infos/qvel`` give the exact state;
- step k > 1 starts at a model-generated observation, so the state is rebuilt from it: the D4RL
  locomotion observation is ``[qpos[1:], qvel]``; the x position (unobserved) is set to 0, which no
  dynamics depend on. That is exact for HalfCheetah. Hopper and Walker2d clip ``qvel`` to +-10 in the
  observation, so a row whose observed velocity sits at the clip bound gets a velocity that may be too
  small: it is flagged inexact. Walker2d rebuilt from observations is only approximate in practice
  (measured: errors of ~2.4 with clipped velocities), so all its k > 1 rows are flagged inexact.

Policies (``POLICIES``): ``data`` replays the dataset's logged actions (the behaviour policy): step 1
uses the action stored with the start state and step k the action logged k-1 transitions later in the
same episode (open loop; start states are drawn where that episode lasts long enough); ``random`` draws
uniform actions in [-1, 1]; ``sac`` samples a trained actor (``policy.pt`` of ``mbrl-tune train``),
stochastic as in the trial's rollouts.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from trials.agent.sac import Actor
from trials.config import TrialConfig
from trials.data.dataset import Dataset
from trials.envs import VELOCITY_CLIP, EnvSpec, set_state
from trials.files import DamagedFileError, read_torch
from trials.models.dynamics import EnsembleDynamics
from trials.models.pool import select_members
from trials.rollouts.penalties import PENALTIES

#: The heuristics calibrated: every registered penalty but ``none`` (constant zero).
HEURISTICS: tuple[str, ...] = tuple(name for name in PENALTIES if name != "none")

#: Envs whose state rebuilt from an observation is approximate even below the clip bound.
APPROXIMATE_REBUILD: frozenset[str] = frozenset({"walker2d"})


class CalibrationError(ValueError):
    """A calibration that cannot run (env without a state rebuild rule, unusable policy); one line."""


# ---------------------------------------------------------------- policies
#: ``(obs [B, obs_dim], start indices [B], step index from 0) -> actions [B, act_dim]``.
PolicyFn = Callable[[torch.Tensor, np.ndarray, int], torch.Tensor]
#: ``(dataset, policy file or None, torch generator) -> PolicyFn``.
PolicyMaker = Callable[[Dataset, Path | None, torch.Generator], PolicyFn]


def _data_policy(ds: Dataset, path: Path | None, gen: torch.Generator) -> PolicyFn:
    actions = torch.as_tensor(ds.actions, dtype=torch.float32)

    def act(obs: torch.Tensor, start: np.ndarray, step: int) -> torch.Tensor:
        return actions[torch.as_tensor(start + step)]

    return act


def _random_policy(ds: Dataset, path: Path | None, gen: torch.Generator) -> PolicyFn:
    act_dim = ds.spec.act_dim

    def act(obs: torch.Tensor, start: np.ndarray, step: int) -> torch.Tensor:
        return torch.rand((obs.shape[0], act_dim), generator=gen) * 2.0 - 1.0

    return act


def _sac_policy(ds: Dataset, path: Path | None, gen: torch.Generator) -> PolicyFn:
    if path is None:
        raise CalibrationError("policy 'sac' needs a policy.pt file (written by mbrl-tune train)")
    try:
        saved = read_torch(path, "policy file", "give a policy.pt written by mbrl-tune train", map_location="cpu",
                           weights_only=True)
    except DamagedFileError as exc:
        raise CalibrationError(str(exc)) from None
    if not isinstance(saved, dict) or "actor" not in saved or "config" not in saved:
        raise CalibrationError(f"{path}: not a policy file of mbrl-tune train (needs 'actor' and 'config')")
    sac = TrialConfig.from_dict(saved["config"], str(path)).sac
    actor = Actor(ds.spec.obs_dim, ds.spec.act_dim, sac.hidden, sac.layers)
    try:
        actor.load_state_dict(saved["actor"])
    except RuntimeError as exc:
        raise CalibrationError(f"{path}: actor does not fit env '{ds.meta.env}' "
                               f"({str(exc).splitlines()[0]})") from None

    @torch.no_grad()
    def act(obs: torch.Tensor, start: np.ndarray, step: int) -> torch.Tensor:
        return actor(obs, deterministic=False, with_log_prob=False, gen=gen)[0]

    return act


#: Policy kind -> maker.
POLICIES: dict[str, PolicyMaker] = {"data": _data_policy, "random": _random_policy, "sac": _sac_policy}


def make_policy(kind: str, ds: Dataset, path: Path | None, gen: torch.Generator) -> PolicyFn:
    try:
        maker = POLICIES[kind]
    except KeyError:
        raise CalibrationError(f"unknown policy '{kind}'; known: {', '.join(POLICIES)}") from None
    return maker(ds, path, gen)


# ---------------------------------------------------------------- simulator states
def state_from_obs(env_name: str, obs: np.ndarray, qpos_dim: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """The simulator state behind a D4RL locomotion observation ``[qpos[1:], qvel]`` (x position = 0),
    and whether it is exact (see the module docstring)."""
    if env_name not in VELOCITY_CLIP:
        raise CalibrationError(f"env '{env_name}': no rule to rebuild its simulator state from an observation; "
                               f"known: {', '.join(VELOCITY_CLIP)}")
    obs = np.asarray(obs, dtype=np.float64)
    qpos = np.concatenate([[0.0], obs[:qpos_dim - 1]])
    qvel = obs[qpos_dim - 1:].copy()
    clip = VELOCITY_CLIP[env_name]
    at_bound = clip is not None and bool(np.any(np.abs(qvel) >= clip - 1e-6))
    return qpos, qvel, not at_bound and env_name not in APPROXIMATE_REBUILD


class TrueStepper:
    """The real environment as a one-step oracle: set a state, step an action, read the next observation."""

    def __init__(self, spec: EnvSpec) -> None:
        self.env = spec.make()
        self.env.reset(seed=0)  # Gymnasium refuses step() before a first reset

    def step(self, qpos: np.ndarray, qvel: np.ndarray, action: np.ndarray) -> tuple[np.ndarray, float]:
        set_state(self.env, qpos, qvel)
        obs, reward, *_ = self.env.step(np.asarray(action, dtype=np.float64))
        return np.asarray(obs, dtype=np.float64), float(reward)

    def close(self) -> None:
        self.env.close()


# ---------------------------------------------------------------- the measurement
@dataclass(frozen=True)
class CalibrationConfig:
    """What to measure."""

    states: int = 500
    """Start states drawn uniformly (without replacement) from the usable dataset states."""
    horizon: int = 5
    """Model steps rolled out from each start state; every step's transitions are recorded."""
    policy: str = "data"
    """Action source: ``data`` (logged actions), ``random`` or ``sac`` (needs ``policy_file``)."""
    policy_file: Path | None = None
    """The ``policy.pt`` of ``mbrl-tune train`` for policy ``sac``."""
    num_models: int = 7
    """Members of the pool the heuristics use (chosen by ``trials.models.pool.select_members``)."""
    num_elites: int = 5
    """Members next states are sampled from."""
    seed: int = 0
    """Seed of the start-state draw, the actions, the sampled members and noise."""


@dataclass
class CalibrationResult:
    """One row per (start state, step) reached; arrays share their first dimension."""

    step: np.ndarray
    """Model step of the row, 1..horizon (1: prediction at a dataset state)."""
    start: np.ndarray
    """Dataset index of the rollout's start state."""
    obs: np.ndarray
    """State the prediction is made at."""
    action: np.ndarray
    """Action taken there."""
    pred_next: np.ndarray
    """Ensemble mean prediction of the next state (mean over the N members)."""
    sample_next: np.ndarray
    """Sampled next state (random elite, as in rollouts): the state the rollout continues from."""
    true_next: np.ndarray
    """Next state the real simulator produced."""
    true_error: np.ndarray
    """``||pred_next - true_next||``."""
    sample_error: np.ndarray
    """``||sample_next - true_next||``."""
    reward_error: np.ndarray
    """``|mean predicted reward - true reward|``."""
    exact: np.ndarray
    """Whether the simulator state behind ``obs`` is exact (see the module docstring)."""
    heuristics: dict[str, np.ndarray] = field(default_factory=dict)
    """Heuristic name -> u(s, a) per row."""
    meta: dict[str, str | int | float] = field(default_factory=dict)
    """Env, dataset hash, pool key, policy, config: provenance for reports."""

    _ARRAYS: ClassVar[tuple[str, ...]] = ("step", "start", "obs", "action", "pred_next", "sample_next", "true_next",
                                          "true_error", "sample_error", "reward_error", "exact")

    def save(self, path: Path) -> Path:
        """Write everything as one ``.npz`` (heuristics as ``u_<name>``, meta as a JSON string)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp.npz")
        np.savez(tmp, **{k: getattr(self, k) for k in self._ARRAYS},
                 **{f"u_{k}": v for k, v in self.heuristics.items()}, meta=np.array(json.dumps(self.meta)))
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: Path) -> CalibrationResult:
        with np.load(path) as f:
            arrays = {k: f[k] for k in cls._ARRAYS}
            heuristics = {k.removeprefix("u_"): f[k] for k in f.files if k.startswith("u_")}
            meta = json.loads(str(f["meta"]))
        return cls(**arrays, heuristics=heuristics, meta=meta)


def _start_indices(ds: Dataset, cfg: CalibrationConfig, rng: np.random.Generator) -> np.ndarray:
    """Start states: any state for generated actions; for replayed logged actions, states whose episode
    continues for ``horizon - 1`` more transitions."""
    n = len(ds)
    usable = np.arange(n)
    if cfg.policy == "data" and cfg.horizon > 1:
        # A rollout from i replays the actions of transitions i..i+h-1: none of i..i+h-2 may end the episode.
        ends = np.concatenate([[0], np.cumsum(ds.terminals | ds.timeouts)])
        usable = usable[: n - cfg.horizon + 1]
        usable = usable[ends[usable + cfg.horizon - 1] == ends[usable]]
    if len(usable) == 0:
        raise CalibrationError(f"no dataset state starts {cfg.horizon} logged steps within one episode")
    return np.sort(rng.choice(usable, size=min(cfg.states, len(usable)), replace=False))


@torch.no_grad()
def calibrate(ds: Dataset, pool: EnsembleDynamics, cfg: CalibrationConfig) -> CalibrationResult:
    """Roll out in the learned model and measure every heuristic and the true error (module docstring)."""
    spec = ds.spec
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    policy = make_policy(cfg.policy, ds, cfg.policy_file, gen)
    model, elites = select_members(pool.to("cpu"), cfg.num_models, cfg.num_elites)
    start = _start_indices(ds, cfg, rng)
    stepper = TrueStepper(spec)
    rows: dict[str, list[np.ndarray]] = {k: [] for k in CalibrationResult._ARRAYS}
    heur: dict[str, list[np.ndarray]] = {k: [] for k in HEURISTICS}
    obs = torch.as_tensor(ds.observations[start], dtype=torch.float32)
    alive = start.copy()  # start index of each rollout still running
    try:
        for step in range(cfg.horizon):
            if len(alive) == 0:
                break
            act = policy(obs, alive, step).to(torch.float32)
            mean, std = model.predict(obs, act)  # [N, B, obs_dim + 1]
            b = obs.shape[0]
            k = elites[torch.randint(0, elites.shape[0], (b,), generator=gen)]
            batch = torch.arange(b)
            sample = mean[k, batch] + std[k, batch] * torch.randn(mean.shape[1:], generator=gen)
            for name in HEURISTICS:
                heur[name].append(PENALTIES[name](mean, std, sample, k).double().numpy())
            pred = (obs + mean.mean(0)[:, :-1]).double().numpy()
            pred_rew = mean.mean(0)[:, -1].double().numpy()
            sampled = obs + sample[:, :-1]
            obs_np, act_np = obs.double().numpy(), act.double().numpy()
            true_next = np.empty_like(pred)
            true_rew = np.empty(b)
            exact = np.empty(b, dtype=bool)
            for i in range(b):
                if step == 0 and ds.qpos is not None and ds.qvel is not None:
                    qpos, qvel, exact[i] = ds.qpos[alive[i]], ds.qvel[alive[i]], True
                else:
                    qpos, qvel, exact[i] = state_from_obs(spec.name, obs_np[i], spec.qpos_dim)
                true_next[i], true_rew[i] = stepper.step(qpos, qvel, act_np[i])
            sampled_np = sampled.double().numpy()
            for key, value in (("step", np.full(b, step + 1)), ("start", alive), ("obs", obs_np),
                               ("action", act_np), ("pred_next", pred), ("sample_next", sampled_np),
                               ("true_next", true_next),
                               ("true_error", np.linalg.norm(pred - true_next, axis=1)),
                               ("sample_error", np.linalg.norm(sampled_np - true_next, axis=1)),
                               ("reward_error", np.abs(pred_rew - true_rew)), ("exact", exact)):
                rows[key].append(value)
            # Continue from the sampled state, as rollouts do; stop where the true termination rule says.
            keep = ~spec.terminated(sampled).numpy() & np.isfinite(sampled_np).all(axis=1)
            obs, alive = sampled[torch.as_tensor(keep)], alive[keep]
    finally:
        stepper.close()
    meta: dict[str, str | int | float] = {
        "env": spec.name, "dataset_hash": ds.content_hash(), "policy": cfg.policy,
        "policy_file": str(cfg.policy_file) if cfg.policy_file else "", "states": int(len(start)),
        "horizon": cfg.horizon, "num_models": cfg.num_models, "num_elites": cfg.num_elites, "seed": cfg.seed,
        "true_error": "L2 of (ensemble mean prediction - true next state), mean over the N members",
    }
    return CalibrationResult(**{k: np.concatenate(v) for k, v in rows.items()},
                             heuristics={k: np.concatenate(v) for k, v in heur.items()}, meta=meta)
