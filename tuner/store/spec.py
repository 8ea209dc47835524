"""The sweep spec: what a sweep is, as stored in its folder's ``sweep.json``. Ray-free, so reading a
sweep (status, export, analysis) does not pay for importing Ray and Ax."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from search_spaces.space import RangeParameter
from trials.config import TrialConfig
from trials.files import atomic_write_text
from tuner.errors import SweepError

if TYPE_CHECKING:
    from search_spaces.space import SearchSpace

SPEC_FILE = "sweep.json"
#: The searchers a sweep can use (``tuner.search.registry.SEARCHERS`` builds them).
SEARCHER_KINDS = ("ax", "random", "optuna")
#: What a sweep can optimise, and the report key each is read from: the simulator score, or an offline
#: estimate of the final policy (``trials.measure.offline``), for data without a simulator.
OBJECTIVES = {"simulator": "score", "fqe": "score_fqe", "model": "score_model"}
Objective = Literal["simulator", "fqe", "model"]
#: Trial-config fields that measure the trained policy and change nothing it learns: a sweep trial that also
#: reported offline estimates is the same run as a comparison's run of its configuration without them, and an
#: exported configuration leaves them out.
MEASURE_FIELDS = ("estimate",)


class SweepSpec(BaseModel):
    """Everything a sweep is: written to ``sweep.json`` when it starts, read back by ``resume``."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    name: str
    """Sweep name: the folder under ``storage``."""
    storage: str
    """Root folder of sweeps (a shared path for multi-node clusters)."""
    space_file: str
    """The search space, copied into the sweep folder as ``space.yaml``."""
    datasets: list[str]
    """Dataset files; each gets its own Tune experiment and searcher."""
    trials: int = Field(ge=1)
    """Trials per dataset (the hand-tuned baseline included)."""
    concurrency: int = Field(1, ge=1)
    """Trials running at once (one CPU each)."""
    seeds: list[int] = [0]
    """Seeds every configuration runs with; its objective is the mean score over them."""
    searcher: str = "ax"
    """Searcher kind: ax, random or optuna."""
    num_init_trials: int = Field(8, ge=1)
    """Initial design size of the Ax searcher (baseline included)."""
    early_stop: Literal["none", "asha"] = "none"
    """``asha`` stops poor trials at rungs of the epoch count."""
    baselines: str = "mopo_official"
    """Source of the hand-tuned baseline evaluated first (``mopo_official`` or ``offlinerl_kit``)."""
    warm_start: list[str] = []
    """Previous sweeps whose scored trials seed the searcher."""
    base: dict[str, Any]
    """The base trial config (budget, architecture); searched keys override it per trial."""
    search_seed: int = 0
    """Seed of the searcher."""
    gpus_per_trial: float = Field(0.0, ge=0)
    """GPUs Ray reserves per trial (e.g. 0.5 to share one GPU between two trials); set with device=cuda."""
    trackers: list[str] = ["tensorboard"]
    """Experiment trackers (``tuner.run.trackers``): tensorboard, mlflow, wandb."""
    objective: Objective = "simulator"
    """What the searcher optimises and trials are ranked by (best, export, compare's and confirm's top
    configurations): ``simulator`` (the score in the real environment), ``fqe`` or ``model`` (an offline
    estimate of the final policy, reported after a trial's last epoch). The simulator score is recorded
    either way."""
    dataset_hashes: dict[str, str] = {}
    """Content hash of each dataset when the sweep started (``Dataset.content_hash``): ``resume``,
    ``compare`` and ``export`` refuse a file whose content changed. Empty for sweeps older than this."""

    _dir: Path | None = PrivateAttr(None)

    @property
    def root(self) -> Path:
        """The sweep folder: where it was loaded from (it may have moved, or be mounted elsewhere on
        another node), else ``<storage>/<name>``."""
        return self._dir if self._dir is not None else Path(self.storage).resolve() / self.name

    @property
    def metric(self) -> str:
        """The report key of :attr:`objective` (``score``, ``score_fqe``, ``score_model``)."""
        return OBJECTIVES[self.objective]

    @property
    def pool_dir(self) -> Path:
        return self.root / "pools"

    def experiment_name(self, dataset: str) -> str:
        return Path(dataset).stem

    def experiment_dir(self, dataset: str) -> Path:
        """The Tune experiment folder of ``dataset`` (named after the file's stem)."""
        return self.root / self.experiment_name(dataset)

    def verify_dataset(self, dataset: str, digest: str) -> None:
        """Refuse (one line) a dataset whose content hash is not the one the sweep started with."""
        pinned = self.dataset_hashes.get(dataset)
        if pinned is not None and pinned != digest:
            raise SweepError(f"{dataset}: the dataset changed since sweep '{self.name}' started (content hash "
                             f"{pinned} then, {digest} now); restore that file, or start a new sweep on the new data")

    def save(self) -> None:
        """Write ``sweep.json`` with dataset and warm-start paths relative to the sweep folder, so that a
        machine that mounts the same storage elsewhere resolves them (see :meth:`load`)."""
        data = self.model_dump()
        data["datasets"] = [_relative(d, self.root) for d in self.datasets]
        data["dataset_hashes"] = {_relative(d, self.root): h for d, h in self.dataset_hashes.items()}
        data["warm_start"] = [_relative(w, self.root) for w in self.warm_start]
        atomic_write_text(self.root / SPEC_FILE, json.dumps(data, indent=2))

    @classmethod
    def load(cls, sweep_dir: str | Path) -> SweepSpec:
        path = Path(sweep_dir) / SPEC_FILE
        if not path.is_file():
            raise SweepError(f"{sweep_dir}: not a sweep folder (no {SPEC_FILE})")
        try:
            spec = cls.model_validate_json(path.read_text())
        except ValidationError as exc:
            raise SweepError(f"{path}: not a valid sweep spec ({exc.error_count()} errors, first: "
                             f"{exc.errors()[0]['msg']})") from None
        root = Path(sweep_dir).resolve()
        spec._dir = root
        # Relative paths (sweeps written since relative recording) are relative to the sweep folder.
        spec.datasets = [_absolute(d, root) for d in spec.datasets]
        spec.dataset_hashes = {_absolute(d, root): h for d, h in spec.dataset_hashes.items()}
        spec.warm_start = [_absolute(w, root) for w in spec.warm_start]
        return spec


def _relative(path: str, root: Path) -> str:
    """``path`` relative to ``root`` (``../../data/x.hdf5``); as given when it is not a local path."""
    if ":" in path.split("/", 1)[0]:  # minari:<id>, s3://...
        return path
    return os.path.relpath(Path(path).resolve(), root)


def _absolute(path: str, root: Path) -> str:
    if ":" in path.split("/", 1)[0] or Path(path).is_absolute():
        return path
    return str((root / path).resolve())


def trial_base(spec: SweepSpec, dataset: str, space: SearchSpace, estimates: bool = True) -> TrialConfig:
    """The base trial config of one dataset: the sweep's base with its dataset, pool folder, and a pool
    large enough for the largest ``num_models`` the space can propose. ``estimates=False`` leaves out the
    offline estimates (``estimate``): ``compare`` and ``confirm`` measure their runs in the simulator, and
    their fresh seeds include the model estimate's judge."""
    data = {**spec.base, "dataset": str(Path(dataset).resolve()), "pool_dir": str(spec.pool_dir)}
    if not estimates:
        for name in MEASURE_FIELDS:
            data.pop(name, None)
    base = TrialConfig.from_dict(data, "sweep base config")
    largest = max([base.num_models, *_upper_bounds(space, "num_models")])
    if largest > base.dynamics.pool_size:
        base = base.with_overrides({"dynamics.pool_size": largest})
    return base


def _upper_bounds(space: SearchSpace, key: str) -> list[int]:
    out = [int(v) for k, v in space.fixed.items() if k == key]
    for param, _, _ in space.iter_parameters():
        if param.key == key and isinstance(param, RangeParameter):
            out.append(int(param.high))
    return out
