"""Offline datasets in D4RL's schema: the in-memory form, HDF5 load/save, Minari load, validation.

File layout (D4RL's): top-level ``observations``, ``actions``, ``rewards``, ``next_observations``,
``terminals``, ``timeouts`` and ``infos/qpos``, ``infos/qvel``. Our metadata lives in the root group's
HDF5 attributes (``env``, ``level``, ``seed``, ``behaviour_return``, ``behaviour_normalized_score``,
``generator_version``); a real D4RL file has none, so its env is taken from ``--env`` or its file name.

D4RL v0 files have no ``next_observations`` (and some no ``timeouts``). They are rebuilt as D4RL's and
OfflineRL-Kit's ``qlearning_dataset`` do: ``next_observations[i] = observations[i + 1]``, and the rows
whose successor belongs to another episode are dropped: the last row of the file and every row at a
timeout (or, without ``timeouts``, at the env's episode limit). Terminal rows are kept (their rebuilt
successor is masked by ``terminals`` in the TD target), again as both references do.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import h5py
import numpy as np

from trials.envs import DATASET_ENVS, ENVS, EnvSpec, get_env_spec
from trials.files import atomic_write

#: How the generator collects data. 2: the behaviour policy's action in float64, rounded to float32, so that
#: a stored policy gives the same file on any CPU (``trials.generation.generate``); 1 computed it in float32.
GENERATOR_VERSION = "2"

_FLOAT_FIELDS = ("observations", "actions", "rewards", "next_observations")
_BOOL_FIELDS = ("terminals", "timeouts")


class DatasetError(ValueError):
    """A dataset file that cannot be used; the message is one line naming file, field and problem."""


@dataclass
class DatasetMeta:
    """What a dataset is and where it came from."""

    env: str
    """Env registry name (``hopper``, ``halfcheetah``, ``walker2d``)."""
    level: str = "unknown"
    """D4RL level: random, medium, expert, medium-replay, medium-expert, or unknown for foreign files."""
    seed: int = -1
    """Seed of the generator run, -1 when unknown."""
    behaviour_return: float = float("nan")
    """Mean undiscounted return of the behaviour policy's evaluation episodes."""
    behaviour_normalized_score: float = float("nan")
    """That return, D4RL-normalised."""
    generator_version: str = "external"
    """``GENERATOR_VERSION`` of mbrl-tune's generator, or ``external`` for loaded D4RL/Minari data."""


@dataclass
class Dataset:
    """Transitions as flat numpy arrays (float32 for values, bool for flags)."""

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_observations: np.ndarray
    terminals: np.ndarray
    timeouts: np.ndarray
    qpos: np.ndarray | None
    """Simulator positions behind each observation (``infos/qpos``), None when the file has none."""
    qvel: np.ndarray | None
    meta: DatasetMeta = field(default_factory=lambda: DatasetMeta(env="hopper"))

    def __len__(self) -> int:
        return int(self.observations.shape[0])

    @property
    def spec(self) -> EnvSpec:
        return get_env_spec(self.meta.env)

    def episode_returns(self) -> np.ndarray:
        """Undiscounted returns of the episodes, split at terminals and timeouts (a trailing partial
        episode counts)."""
        ends = np.flatnonzero(self.terminals | self.timeouts)
        if len(ends) == 0 or ends[-1] != len(self) - 1:
            ends = np.append(ends, len(self) - 1)
        sums = np.cumsum(self.rewards, dtype=np.float64)[ends]
        return np.diff(np.concatenate([[0.0], sums]))

    def initial_states(self) -> np.ndarray:
        """Row indices where an episode starts: the first row and each row after a terminal or a timeout."""
        starts = np.concatenate([[0], np.flatnonzero(self.terminals | self.timeouts) + 1])
        return starts[starts < len(self)]

    def content_hash(self) -> str:
        """sha256 over the transition arrays: the identity of the data, whatever the file is called."""
        h = hashlib.sha256()
        for name in (*_FLOAT_FIELDS, *_BOOL_FIELDS):
            h.update(np.ascontiguousarray(getattr(self, name)).tobytes())
        return h.hexdigest()[:16]

    def validate(self, source: str = "<memory>") -> None:
        """Raise DatasetError on inconsistent lengths, wrong dimensions or non-finite values."""
        spec = self.spec
        n = len(self)
        if n == 0:
            raise DatasetError(f"{source}: field 'observations': dataset is empty")
        expected = {"observations": spec.obs_dim, "next_observations": spec.obs_dim, "actions": spec.act_dim}
        for name, dim in expected.items():
            arr = getattr(self, name)
            if arr.ndim != 2 or arr.shape[1] != dim:
                raise DatasetError(f"{source}: field '{name}': shape {arr.shape}, expected (N, {dim}) "
                                   f"for env '{spec.name}'")
        for name in ("qpos", "qvel"):
            arr = getattr(self, name)
            dim = spec.qpos_dim if name == "qpos" else spec.qvel_dim
            if arr is not None and (arr.ndim != 2 or arr.shape[1] != dim):
                raise DatasetError(f"{source}: field 'infos/{name}': shape {arr.shape}, expected (N, {dim}) "
                                   f"for env '{spec.name}'")
        for name in ("actions", "rewards", "next_observations", "terminals", "timeouts", "qpos", "qvel"):
            arr = getattr(self, name)
            if arr is not None and arr.shape[0] != n:
                label = f"infos/{name}" if name in ("qpos", "qvel") else name
                raise DatasetError(f"{source}: field '{label}': length {arr.shape[0]} differs from "
                                   f"observations' {n}")
        if self.rewards.ndim != 1:
            raise DatasetError(f"{source}: field 'rewards': shape {self.rewards.shape}, expected (N,)")
        for name in (*_FLOAT_FIELDS, "qpos", "qvel"):
            arr = getattr(self, name)
            if arr is not None and not np.isfinite(arr).all():
                bad = int(np.flatnonzero(~np.isfinite(arr).reshape(n, -1).all(axis=1))[0])
                label = f"infos/{name}" if name in ("qpos", "qvel") else name
                raise DatasetError(f"{source}: field '{label}': non-finite value at row {bad}")


def save_hdf5(ds: Dataset, path: str | Path) -> Path:
    """Write ``ds`` in D4RL's schema; the file is complete or absent (temporary name, then rename)."""
    path = Path(path)
    ds.validate(str(path))
    return atomic_write(path, lambda tmp: _write_hdf5(ds, tmp))


def _write_hdf5(ds: Dataset, path: Path) -> None:
    with h5py.File(path, "w") as f:
        for name in (*_FLOAT_FIELDS, *_BOOL_FIELDS):
            f.create_dataset(name, data=getattr(ds, name), compression="gzip", compression_opts=1)
        if ds.qpos is not None and ds.qvel is not None:
            f.create_dataset("infos/qpos", data=ds.qpos, compression="gzip", compression_opts=1)
            f.create_dataset("infos/qvel", data=ds.qvel, compression="gzip", compression_opts=1)
        for key, value in asdict(ds.meta).items():
            f.attrs[key] = value


def _infer_env(path: Path, attrs: dict, env: str | None) -> str:
    if env is not None:
        get_env_spec(env)
        return env
    if "env" in attrs:
        return str(attrs["env"])
    stem = path.name.lower()
    for name in DATASET_ENVS:
        if name in stem:
            return name
    raise DatasetError(f"{path}: attribute 'env': missing, and the file name names none of "
                       f"{', '.join(DATASET_ENVS)}; pass --env")


def dataset_env(path: str | Path) -> str:
    """The env of an HDF5 dataset file from its attributes (or its name) alone, without reading its arrays."""
    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            attrs = dict(f.attrs)
    except OSError as exc:
        raise DatasetError(f"{path}: not a readable HDF5 file ({exc.__class__.__name__})") from None
    return _infer_env(path, attrs, None)


def load_hdf5(path: str | Path, env: str | None = None) -> Dataset:
    """Load and validate a D4RL-schema HDF5 file (ours or D4RL's own)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise DatasetError(f"{path}: not a readable HDF5 file ({exc.__class__.__name__})") from None
    with f:
        attrs = dict(f.attrs)
        env_name = _infer_env(path, attrs, env)
        if env_name not in ENVS:
            raise DatasetError(f"{path}: attribute 'env': unknown env '{env_name}'; known: {', '.join(ENVS)}")
        arrays: dict[str, np.ndarray | None] = {}
        v0 = "next_observations" not in f
        for name in (*_FLOAT_FIELDS, *_BOOL_FIELDS):
            if name not in f:
                if v0 and name in ("next_observations", "timeouts"):
                    arrays[name] = None  # D4RL v0 files lack them; rebuilt below
                    continue
                raise DatasetError(f"{path}: field '{name}': missing")
            arrays[name] = f[name][()]
        for name in ("qpos", "qvel"):
            arrays[name] = f[f"infos/{name}"][()].astype(np.float64) if f"infos/{name}" in f else None
    meta_fields = DatasetMeta.__dataclass_fields__
    stored = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in attrs.items() if k in meta_fields}
    meta = DatasetMeta(**{**stored, "env": env_name})
    if "level" not in stored and d4rl_level(path):  # D4RL's own files: the level is in the name
        meta.level = d4rl_level(path) or meta.level
    rewards = np.asarray(arrays["rewards"], dtype=np.float32)
    terminals = np.asarray(arrays["terminals"]).astype(bool).reshape(-1)
    ds = Dataset(
        observations=np.asarray(arrays["observations"], dtype=np.float32),
        actions=np.asarray(arrays["actions"], dtype=np.float32),
        rewards=rewards.reshape(-1) if rewards.ndim == 2 and rewards.shape[1] == 1 else rewards,
        next_observations=np.empty((0, 0), np.float32),  # set below
        terminals=terminals,
        timeouts=(np.asarray(arrays["timeouts"]).astype(bool).reshape(-1) if arrays["timeouts"] is not None
                  else episode_limit_timeouts(terminals, get_env_spec(env_name).max_episode_steps)),
        qpos=arrays["qpos"],
        qvel=arrays["qvel"],
        meta=meta,
    )
    if arrays["next_observations"] is None:
        ds = rebuild_next_observations(ds)
    else:
        ds.next_observations = np.asarray(arrays["next_observations"], dtype=np.float32)
    ds.validate(str(path))
    return ds


def episode_limit_timeouts(terminals: np.ndarray, max_episode_steps: int) -> np.ndarray:
    """Timeouts of a file without them: the row where an episode reaches ``max_episode_steps`` steps
    without a terminal (D4RL's ``qlearning_dataset`` rule when ``timeouts`` is absent)."""
    out = np.zeros_like(terminals)
    step = 0
    for i, terminal in enumerate(terminals):
        step += 1
        if terminal:
            step = 0
        elif step == max_episode_steps:
            out[i] = True
            step = 0
    return out


def rebuild_next_observations(ds: Dataset) -> Dataset:
    """A v0 dataset (no ``next_observations``): successors from the next row, dropping the rows whose
    next row starts another episode (timeouts, and the file's last row); the kept row before each dropped
    one becomes its episode's timeout. See the module docstring."""
    n = len(ds)
    keep = ~ds.timeouts.copy()
    keep[n - 1] = False
    next_obs = np.concatenate([ds.observations[1:], ds.observations[-1:]])[keep]
    # The row before a dropped one now ends its episode: it keeps the boundary as a timeout.
    ends = np.zeros(n, dtype=bool)
    ends[:-1] = keep[:-1] & ~keep[1:]

    def rows(arr: np.ndarray | None) -> np.ndarray | None:
        return None if arr is None or len(arr) != n else arr[keep]

    return Dataset(observations=ds.observations[keep], actions=ds.actions[keep], rewards=ds.rewards[keep],
                   next_observations=next_obs, terminals=ds.terminals[keep],
                   timeouts=(ends & ~ds.terminals)[keep], qpos=rows(ds.qpos), qvel=rows(ds.qvel),
                   meta=ds.meta)


def load_minari(dataset_id: str, env: str) -> Dataset:
    """Load a locally present Minari dataset (``minari`` package required; nothing is downloaded)."""
    try:
        import minari  # noqa: PLC0415  (optional dependency)
    except ImportError:
        raise DatasetError(f"minari:{dataset_id}: the 'minari' package is not installed") from None
    try:
        mds = minari.load_dataset(dataset_id, download=False)
    except Exception as exc:  # minari raises several types for a missing local dataset
        raise DatasetError(f"minari:{dataset_id}: cannot load locally ({exc})") from None
    parts: dict[str, list[np.ndarray]] = {k: [] for k in (*_FLOAT_FIELDS, *_BOOL_FIELDS, "qpos", "qvel")}
    for ep in mds.iterate_episodes():
        obs = np.asarray(ep.observations)
        parts["observations"].append(obs[:-1])
        parts["next_observations"].append(obs[1:])
        parts["actions"].append(np.asarray(ep.actions))
        parts["rewards"].append(np.asarray(ep.rewards))
        parts["terminals"].append(np.asarray(ep.terminations))
        parts["timeouts"].append(np.asarray(ep.truncations))
        infos = ep.infos or {}
        for name in ("qpos", "qvel"):
            if name in infos:
                parts[name].append(np.asarray(infos[name])[:-1])
    cat = {k: np.concatenate(v) if v else None for k, v in parts.items()}
    ds = Dataset(
        observations=cat["observations"].astype(np.float32),
        actions=cat["actions"].astype(np.float32),
        rewards=cat["rewards"].astype(np.float32),
        next_observations=cat["next_observations"].astype(np.float32),
        terminals=cat["terminals"].astype(bool),
        timeouts=cat["timeouts"].astype(bool),
        qpos=cat["qpos"], qvel=cat["qvel"],
        meta=DatasetMeta(env=env),
    )
    ds.validate(f"minari:{dataset_id}")
    return ds


#: ``d4rl:<env>-<level>-v<N>``, e.g. ``d4rl:hopper-medium-replay-v2``.
_D4RL_NAME = re.compile(r"^(?P<env>[a-z0-9]+)-(?P<level>[a-z-]+)-v(?P<version>\d+)$")
#: D4RL's own file names, as its loader stores them: ``hopper_medium_replay-v2.hdf5``.
_D4RL_FILE = re.compile(r"^(?P<env>[a-z0-9]+)_(?P<level>[a-z_]+)-v(?P<version>\d+)$")


def d4rl_dirs() -> list[Path]:
    """Where ``d4rl:`` names are looked up: ``$D4RL_DATASET_DIR`` (if set), then ``~/.d4rl/datasets``
    (D4RL's own download folder). Nothing is ever downloaded."""
    dirs = [Path(os.environ["D4RL_DATASET_DIR"])] if os.environ.get("D4RL_DATASET_DIR") else []
    return [*dirs, Path.home() / ".d4rl" / "datasets"]


def resolve_d4rl(name: str) -> Path:
    """The local file of ``d4rl:<env>-<level>-v<N>`` (``hopper_medium-v2.hdf5`` as D4RL names it, or
    ``hopper-medium-v2.hdf5``), or a DatasetError saying where it looked."""
    match = _D4RL_NAME.match(name)
    if match is None or match["env"] not in DATASET_ENVS:
        raise DatasetError(f"d4rl:{name}: not a D4RL dataset name; expected <env>-<level>-v<N> with env one of "
                           f"{', '.join(DATASET_ENVS)}, e.g. d4rl:hopper-medium-v2")
    files = [f"{match['env']}_{match['level'].replace('-', '_')}-v{match['version']}.hdf5", f"{name}.hdf5"]
    for folder in d4rl_dirs():
        for file in files:
            if (folder / file).is_file():
                return folder / file
    where = ", ".join(str(d) for d in d4rl_dirs())
    raise DatasetError(f"d4rl:{name}: no local file {' or '.join(files)} in {where} (nothing is downloaded: put "
                       f"the file there or set D4RL_DATASET_DIR)")


def d4rl_level(path: Path) -> str | None:
    """The level a D4RL-named file holds (``hopper_medium_replay-v2.hdf5`` -> ``medium-replay``)."""
    stem = path.stem
    match = _D4RL_FILE.match(stem) or _D4RL_NAME.match(stem)
    return match["level"].replace("_", "-") if match else None


def dataset_path(source: str | Path) -> str:
    """The file behind a dataset source: a ``d4rl:`` name resolved to its local file, anything else as
    given (a path, or ``minari:<id>``)."""
    text = str(source)
    return str(resolve_d4rl(text.removeprefix("d4rl:"))) if text.startswith("d4rl:") else text


def load_dataset(source: str | Path, env: str | None = None) -> Dataset:
    """Load a dataset from a local HDF5 path, ``d4rl:<env>-<level>-v<N>`` for a D4RL file present locally
    (see :func:`d4rl_dirs`), or ``minari:<id>`` for a local Minari dataset."""
    text = str(source)
    if text.startswith("minari:"):
        if env is None:
            raise DatasetError(f"{text}: attribute 'env': Minari datasets need --env")
        return load_minari(text.removeprefix("minari:"), env)
    return load_hdf5(dataset_path(text), env)


def concatenate(a: Dataset, b: Dataset, meta: DatasetMeta) -> Dataset:
    """``a`` followed by ``b`` (D4RL's medium-expert recipe)."""
    both = [a, b]

    def cat(name: str) -> np.ndarray | None:
        arrs = [getattr(d, name) for d in both]
        return None if any(x is None for x in arrs) else np.concatenate(arrs)

    return Dataset(**{name: cat(name) for name in (*_FLOAT_FIELDS, *_BOOL_FIELDS, "qpos", "qvel")}, meta=meta)


def summary(ds: Dataset) -> dict[str, float | int | str]:
    """Size, episodes and return statistics, as printed by ``mbrl-tune datasets info``."""
    returns = ds.episode_returns()
    out: dict[str, float | int | str] = {
        "env": ds.meta.env,
        "level": ds.meta.level,
        "transitions": len(ds),
        "episodes": len(returns),
        "terminals": int(ds.terminals.sum()),
        "timeouts": int(ds.timeouts.sum()),
        "return_mean": float(returns.mean()),
        "return_std": float(returns.std()),
        "return_min": float(returns.min()),
        "return_max": float(returns.max()),
        "has_qpos_qvel": ds.qpos is not None,
        "behaviour_return": ds.meta.behaviour_return,
        "behaviour_normalized_score": ds.meta.behaviour_normalized_score,
        "seed": ds.meta.seed,
        "generator_version": ds.meta.generator_version,
        "content_hash": ds.content_hash(),
    }
    if ds.spec.random_score is not None:
        out["episode_normalized_score_mean"] = float(ds.spec.normalized_score(returns.mean()))
    return out
