"""D4RL-style dataset generation in real MuJoCo (the recipe in docs/reference.md).

- random: uniform random actions.
- medium: a SAC policy stopped when its evaluation return first reaches ``medium_fraction`` (1/3) of the
  D4RL expert reference (or at ``medium_max_steps``, whichever comes first).
- expert: a SAC policy trained for ``expert_steps``.
- medium-replay: every transition the medium run took (its whole replay history), oldest first.
- medium-expert: medium and expert data concatenated, half of ``size`` each.

Behaviour policies (and the medium run's history) are cached in ``policy_dir`` under a key of
(env, seed, SAC settings, budget), so asking for medium-expert after medium does not retrain.
Data is collected with the stochastic policy, as D4RL did, storing ``infos/qpos``/``infos/qvel``.

Portable collection (generator version 2): the same stored behaviour policy gives the same file, bit for
bit, on any CPU. MuJoCo steps the same on every x86 host (the uniform-random datasets always matched), but
a float32 forward of the policy differs in its last bits between CPUs (kernels sum in another order) and
MuJoCo amplifies that within an episode. So the action is computed in float64 (the noise from numpy's
generator, which is exact integer arithmetic) and rounded to float32 before MuJoCo sees it: a last-bit
difference of the float64 result changes the rounded value with a chance of about 1e-9 per value.
Training a behaviour policy is not portable (SAC in float32, millions of updates): the policy file is what
makes a dataset reproducible elsewhere (``docs/results/behaviour/``).
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from trials.agent.sac import LOG_STD_MAX, LOG_STD_MIN, SAC, Actor
from trials.config import SACConfig, torch_device
from trials.data.dataset import GENERATOR_VERSION, Dataset, DatasetMeta, concatenate
from trials.envs import EnvSpec, get_state
from trials.files import DamagedFileError, atomic_write, read_torch
from trials.generation.online import TransitionLog, train_online
from trials.generation.settings import GenerateConfig

#: Version of how behaviour policies are trained: part of their cache key. Kept apart from the dataset's
#: ``GENERATOR_VERSION`` (how data is collected), so that a change of collection reuses cached policies.
POLICY_VERSION = "1"


@dataclass
class BehaviourPolicy:
    """A cached policy: its actor weights and how it was trained."""

    level: str
    agent: SAC | None
    """None for the random policy."""
    train_steps: int
    final_eval_return: float


#: SAC options added after the first policies were cached (docs/results/behaviour/): they enter the
#: cache key only when set away from their defaults, which run the algorithm those policies were trained
#: with, so adding an agent option never orphans a cached policy. Add every new SACConfig field here.
LATER_SAC_FIELDS = ("num_critics", "eta", "deterministic_backup", "target_floor")


def _sac_key(sac: SACConfig) -> dict[str, object]:
    defaults = SACConfig()
    return {k: v for k, v in sac.model_dump().items()
            if k not in LATER_SAC_FIELDS or v != getattr(defaults, k)}


def _cache_key(spec: EnvSpec, level: str, seed: int, cfg: GenerateConfig) -> str:
    budget = {"medium": (cfg.medium_fraction, cfg.medium_max_steps), "expert": (cfg.expert_steps,)}[level]
    blob = json.dumps([spec.name, level, seed, _sac_key(cfg.sac), budget, cfg.learning_starts,
                       cfg.eval_every, cfg.eval_episodes, POLICY_VERSION], sort_keys=True)
    return f"{spec.name}-seed{seed}-{level}-{hashlib.sha256(blob.encode()).hexdigest()[:10]}"


def _save_npz(arrays: object, path: Path) -> None:
    with open(path, "wb") as f:
        np.savez(f, **arrays)  # type: ignore[arg-type]


def behaviour_policy(spec: EnvSpec, level: str, seed: int, cfg: GenerateConfig, policy_dir: Path,
                     progress: bool = True) -> BehaviourPolicy:
    """The medium or expert policy for (env, seed, cfg): loaded from ``policy_dir`` when cached,
    trained (and cached, with the medium run's history) otherwise."""
    policy_dir.mkdir(parents=True, exist_ok=True)
    key = _cache_key(spec, level, seed, cfg)
    path = policy_dir / f"{key}.pt"
    agent = SAC(spec.obs_dim, spec.act_dim, cfg.sac, cfg.device)
    if path.exists():
        saved = read_torch(path, "behaviour policy", "restore it from a copy, or delete it to train the policy "
                           "again (a medium policy takes about 45 min here)", map_location=cfg.device,
                           weights_only=True)
        try:
            if saved.get("key", key) != key:  # policies cached before the key was stored have none
                raise KeyError(f"holds {saved['key']}")
            agent.actor.load_state_dict(saved["actor"])
            int(saved["train_steps"]), float(saved["final_eval_return"])
        except (KeyError, TypeError, RuntimeError, AttributeError) as exc:
            raise DamagedFileError(f"{path}: not a behaviour policy of this env and settings "
                                   f"({type(exc).__name__}); restore the right file or delete it to train "
                                   f"the policy again") from None
        return BehaviourPolicy(level, agent, int(saved["train_steps"]), float(saved["final_eval_return"]))
    if level == "medium":
        target = cfg.medium_fraction * float(spec.expert_score or 0.0)
        result = train_online(spec, cfg.sac, cfg.medium_max_steps, seed, learning_starts=cfg.learning_starts,
                              eval_every=cfg.eval_every, eval_episodes=cfg.eval_episodes, stop_return=target,
                              device=cfg.device, progress=progress)
        atomic_write(policy_dir / f"{key}-replay.npz", partial(_save_npz, result.log.arrays()))
    else:
        result = train_online(spec, cfg.sac, cfg.expert_steps, seed, learning_starts=cfg.learning_starts,
                              eval_every=cfg.eval_every, eval_episodes=cfg.eval_episodes, device=cfg.device,
                              progress=progress)
    final = result.evaluations[-1][1] if result.evaluations else float("nan")
    atomic_write(path, partial(torch.save, {"actor": result.agent.actor.state_dict(), "train_steps": result.steps,
                                            "final_eval_return": final, "evaluations": result.evaluations,
                                            "key": key}))
    return BehaviourPolicy(level, result.agent, result.steps, final)


class PortableActor:
    """The behaviour policy's stochastic action, the same on every CPU (see the module docstring): a float64
    copy of the actor, Gaussian noise from numpy's generator, the action rounded to float32."""

    def __init__(self, actor: Actor, seed: int) -> None:
        self.net = copy.deepcopy(actor.net).to("cpu", torch.float64)
        self.rng = np.random.default_rng(seed)

    @torch.no_grad()
    def __call__(self, obs: np.ndarray) -> np.ndarray:
        out = self.net(torch.from_numpy(np.asarray(obs, dtype=np.float64)).unsqueeze(0))[0]
        mean, log_std = out.chunk(2, dim=-1)
        eps = torch.from_numpy(self.rng.standard_normal(mean.shape[0]))
        act = torch.tanh(mean + log_std.clamp(LOG_STD_MIN, LOG_STD_MAX).exp() * eps)
        return act.numpy().astype(np.float32)


def collect(spec: EnvSpec, policy: BehaviourPolicy, size: int, seed: int, progress: bool = True,
            actions: np.ndarray | None = None) -> TransitionLog:
    """Run ``policy`` (stochastic; uniform random for the random level) for exactly ``size`` transitions;
    with ``actions``, take those instead, in order (:func:`replay`)."""
    env = spec.make()
    env.action_space.seed(seed)
    log = TransitionLog.for_env(spec, size)
    obs, _ = env.reset(seed=seed)
    qpos, qvel = get_state(env)
    actor = PortableActor(policy.agent.actor, seed) if policy.agent is not None else None
    try:
        for step in tqdm(range(size), desc=f"collect {spec.name}-{policy.level}", disable=not progress,
                         unit="step", leave=False):
            if actions is not None:
                action = actions[step]
            else:
                action = env.action_space.sample() if actor is None else actor(obs)
            next_obs, reward, terminated, truncated, _ = env.step(action)
            log.append(obs, action, float(reward), next_obs, bool(terminated), bool(truncated), qpos, qvel)
            if terminated or truncated:
                obs, _ = env.reset()
            else:
                obs = next_obs
            qpos, qvel = get_state(env)
    finally:
        env.close()
    return log


def replay(spec: EnvSpec, level: str, seed: int, actions: np.ndarray, generator_version: str,
           progress: bool = True) -> Dataset:
    """The dataset made by taking ``actions`` in order from the collection's start (``seed``, as
    :func:`generate` seeds a ``level``'s collection): MuJoCo steps the same on every CPU, so a file whose
    actions are kept is rebuilt exactly anywhere, whatever computed them (a version 1 file's float32 policy
    forward included); ``generator_version`` is the rebuilt file's."""
    policy = BehaviourPolicy(level, None, 0, float("nan"))
    log = collect(spec, policy, len(actions), seed + 1, progress, actions=np.asarray(actions, dtype=np.float32))
    return _to_dataset(spec, log.arrays(), level, seed, generator_version)


def _to_dataset(spec: EnvSpec, arrays: dict[str, np.ndarray], level: str, seed: int,
                generator_version: str = GENERATOR_VERSION) -> Dataset:
    ds = Dataset(qpos=arrays.pop("qpos"), qvel=arrays.pop("qvel"), **arrays,
                 meta=DatasetMeta(env=spec.name, level=level, seed=seed, generator_version=generator_version))
    _set_behaviour_score(ds)
    return ds


def _set_behaviour_score(ds: Dataset) -> None:
    """Behaviour return = mean return of the complete episodes (the partial last one if none is)."""
    returns = ds.episode_returns()
    complete = int((ds.terminals | ds.timeouts).sum())
    ret = float(returns[:complete].mean()) if complete else float(returns.mean())
    ds.meta.behaviour_return = ret
    if ds.spec.random_score is not None:
        ds.meta.behaviour_normalized_score = float(ds.spec.normalized_score(ret))


def _random(spec: EnvSpec, size: int, seed: int, cfg: GenerateConfig, policy_dir: Path,
            progress: bool) -> Dataset:
    policy = BehaviourPolicy("random", None, 0, float("nan"))
    return _to_dataset(spec, collect(spec, policy, size, seed + 1, progress).arrays(), "random", seed)


def _policy_level(level: str) -> LevelMaker:
    def make(spec: EnvSpec, size: int, seed: int, cfg: GenerateConfig, policy_dir: Path,
             progress: bool) -> Dataset:
        policy = behaviour_policy(spec, level, seed, cfg, policy_dir, progress)
        return _to_dataset(spec, collect(spec, policy, size, seed + 1, progress).arrays(), level, seed)
    return make


def _medium_replay(spec: EnvSpec, size: int, seed: int, cfg: GenerateConfig, policy_dir: Path,
                   progress: bool) -> Dataset:
    behaviour_policy(spec, "medium", seed, cfg, policy_dir, progress)
    with np.load(policy_dir / f"{_cache_key(spec, 'medium', seed, cfg)}-replay.npz") as f:
        arrays = {k: f[k][:size] for k in f.files}
    return _to_dataset(spec, arrays, "medium-replay", seed)


def _medium_expert(spec: EnvSpec, size: int, seed: int, cfg: GenerateConfig, policy_dir: Path,
                   progress: bool) -> Dataset:
    medium = LEVELS["medium"](spec, size // 2, seed, cfg, policy_dir, progress)
    expert = LEVELS["expert"](spec, size - size // 2, seed, cfg, policy_dir, progress)
    ds = concatenate(medium, expert, DatasetMeta(**{**asdict(medium.meta), "level": "medium-expert"}))
    _set_behaviour_score(ds)
    return ds


LevelMaker = Callable[[EnvSpec, int, int, GenerateConfig, Path, bool], Dataset]

#: Level name -> how its data is made (the names: ``trials.generation.settings.LEVEL_NAMES``).
LEVELS: dict[str, LevelMaker] = {
    "random": _random,
    "medium": _policy_level("medium"),
    "expert": _policy_level("expert"),
    "medium-replay": _medium_replay,
    "medium-expert": _medium_expert,
}


def generate(spec: EnvSpec, level: str, size: int, seed: int, cfg: GenerateConfig, policy_dir: Path,
             progress: bool = True) -> Dataset:
    """Make a dataset of ``level`` (see module docstring); nothing is written here."""
    if level not in LEVELS:
        raise ValueError(f"unknown level '{level}'; known: {', '.join(LEVELS)}")
    torch_device(cfg.device)  # a device this machine lacks fails here, in one line, before any work
    return LEVELS[level](spec, size, seed, cfg, policy_dir, progress)
