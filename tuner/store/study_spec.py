"""The study file: one YAML that describes a whole experiment (datasets, search, budget, comparison,
calibration), validated before any work starts. Ray-free.

```yaml
name: evidence                       # the study folder: <storage>/<name>
storage: runs/studies
datasets:                            # generated if missing (env, level, size, seed), or loaded (path only)
  - {path: data/hopper-medium-100k.hdf5, env: hopper, level: medium, size: 100000, seed: 0}
  - {path: /data/d4rl/hopper_medium-v2.hdf5}
space: paper                         # a built-in space name or a YAML path
searcher: ax
objective: simulator                 # or fqe / model: an offline estimate (issue 27)
trials: 16                           # per dataset, the hand-tuned baseline first
init_trials: 8
concurrency: 1
seeds: [0]
baselines: mopo_official             # the sweep's first trial and the compare source
budget: {preset: full, set: {epochs: 20, eval_every: 2, score_window: 3}}
compare: {seeds: 3}
calibrate: {horizons: [1, 5, 10], states: 1000, policy: data}
confirm: {top_k: 2, seeds: 3, set: {epochs: 200}}   # optional: the larger budget, after compare
```

Relative paths are relative to the study file's folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from trials.config import apply_overrides
from trials.files import read_yaml_mapping
from tuner.errors import UsageError
from tuner.store.presets import load_preset, resolve_space
from tuner.store.spec import Objective


class StudyError(UsageError):
    """A study file or study folder that cannot be used; one line."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, frozen=True)


class StudyDataset(_Strict):
    """One dataset of the study: a file that exists, or the recipe to generate it there."""

    path: str
    """The HDF5 file (relative to the study file's folder). Loaded if it exists, else generated."""
    env: str | None = None
    """Env to generate in (hopper, halfcheetah, walker2d); with ``level`` and ``size``, the file is
    generated when missing (and checked against this recipe when present)."""
    level: str | None = None
    """D4RL level to generate (random, medium, expert, medium-replay, medium-expert)."""
    size: int | None = Field(None, ge=1)
    """Transitions to generate."""
    seed: int = 0
    """Seed of the generator."""

    @property
    def generated(self) -> bool:
        return self.env is not None and self.level is not None and self.size is not None


class StudyBudget(_Strict):
    """The trials' base config: a preset plus dotted overrides."""

    preset: str = "full"
    """Built-in base config: tiny, demo or full."""
    set: dict[str, Any] = {}
    """Dotted trial-config overrides (``epochs: 20``, ``rollout.precision: bfloat16``)."""


class StudyCompare(_Strict):
    """The best found configuration against the hand-tuned baseline on fresh seeds."""

    seeds: int = Field(3, ge=1)
    """Fresh seeds both arms run on."""
    concurrency: int | None = Field(None, ge=1)
    """Runs at once (default: the study's concurrency)."""


class StudyCalibrate(_Strict):
    """Uncertainty calibration on each dataset's sweep pool."""

    horizons: list[int] = [1, 5, 10]
    """Model steps to report."""
    states: int = Field(1000, ge=1)
    """Start states drawn from the dataset."""
    policy: Literal["data", "random"] = "data"
    """Actions of the measured rollouts: the logged ones, or uniform random."""


class StudyConfirm(_Strict):
    """The baseline and the sweep's best distinct configurations at a larger budget (``tuner.run.confirm``),
    run after the comparison; a study without this block has no confirm stage."""

    top_k: int | Literal["all"] = 2
    """Best distinct configurations confirmed beside the hand-tuned baseline; ``all``: every finished trial
    on the sweep's seeds (how the whole ranking transfers)."""
    seeds: int = Field(3, ge=1)
    """Fresh seeds every arm runs on (the comparison's, so its pools are reused)."""
    set: dict[str, Any] = {}
    """Dotted overrides of the confirm budget (default: ``epochs`` ten times the search's)."""
    concurrency: int | None = Field(None, ge=1)
    """Runs at once (default: the study's concurrency)."""

    @property
    def k(self) -> int | None:
        """``top_k`` as confirm takes it: None for ``all``."""
        return None if self.top_k == "all" else int(self.top_k)


class StudySpec(_Strict):
    """Everything a study is; stored in its folder as ``study.yaml`` (paths resolved)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    """Study name: its folder under ``storage``."""
    storage: str = "runs/studies"
    """Root folder of studies."""
    datasets: list[StudyDataset] = Field(min_length=1)
    """The datasets; each gets its own sweep, comparison and calibration."""
    space: str = "paper"
    """Search space: a built-in name or a YAML path."""
    searcher: str = "ax"
    """ax, random or optuna."""
    objective: Objective = "simulator"
    """What the sweeps optimise: the simulator score, or an offline estimate of the final policy
    (``fqe``, ``model``); the simulator score is recorded either way (``SweepSpec.objective``)."""
    trials: int = Field(ge=1)
    """Trials per dataset, the hand-tuned baseline first."""
    init_trials: int = Field(8, ge=1)
    """Initial design of the Ax searcher (baseline included)."""
    concurrency: int = Field(1, ge=1)
    """Trials at once (one CPU each)."""
    seeds: list[int] = Field([0], min_length=1)
    """Seeds every sweep configuration runs with."""
    baselines: str = "mopo_official"
    """Hand-tuned source: the sweeps' first trial and the comparison's baseline."""
    search_seed: int = 0
    """Seed of the searcher."""
    budget: StudyBudget = StudyBudget()
    """The trials' base config."""
    compare: StudyCompare = StudyCompare()
    """The fresh-seed comparison."""
    calibrate: StudyCalibrate = StudyCalibrate()
    """The calibration."""
    confirm: StudyConfirm | None = None
    """The confirmation at a larger budget; None: no confirm stage."""

    def dataset_path(self, ds: StudyDataset) -> Path:
        return Path(ds.path)

    def folder(self) -> Path:
        return Path(self.storage) / self.name

    def base_config(self) -> dict[str, Any]:
        """The sweeps' base trial config (without dataset): the budget's preset with its overrides, as a
        sweep spec stores it (``check_study`` validates it as a trial config first)."""
        return apply_overrides(load_preset(self.budget.preset), self.budget.set)


def _one_line(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(x) for x in err["loc"])
    if err["type"] == "extra_forbidden":
        return f"unknown key '{loc}'"
    if err["type"] == "missing":
        return f"key '{loc}': required"
    return f"key '{loc}': {err['msg']}"


def load_study_file(path: str | Path) -> StudySpec:
    """Parse and validate the file's keys; relative paths become absolute (from the file's folder)."""
    path = Path(path)
    data = read_yaml_mapping(path, StudyError, "study keys")
    try:
        spec = StudySpec.model_validate(data)
    except ValidationError as exc:
        raise StudyError(f"{path}: {_one_line(exc)}") from None
    here = path.resolve().parent

    def absolute(p: str) -> str:
        return str(Path(p) if Path(p).is_absolute() else (here / p).resolve())

    space = spec.space if not spec.space.endswith((".yaml", ".yml")) else absolute(spec.space)
    return spec.model_copy(update={
        "storage": absolute(spec.storage), "space": space,
        "datasets": [d.model_copy(update={"path": absolute(d.path)}) for d in spec.datasets]})


def evaluations(epochs: int, eval_every: int) -> int:
    """How many evaluations a trial of ``epochs`` runs (every ``eval_every``, and always the last)."""
    return epochs // eval_every + (epochs % eval_every != 0)


def check_study(spec: StudySpec, source: str) -> None:
    """Every check that needs no work: datasets present or generatable, baselines for each, the budget
    a valid trial config that can fill its score window, the space and searcher known.
    Raises :class:`StudyError` with one line."""
    from search_spaces.parse import load_space  # noqa: PLC0415
    from search_spaces.space import SearchSpaceError  # noqa: PLC0415
    from trials.config import ConfigError, TrialConfig, has_key  # noqa: PLC0415
    from trials.data.baselines import baseline_sources, hand_tuned  # noqa: PLC0415
    from trials.data.dataset import DatasetError, load_dataset  # noqa: PLC0415
    from trials.envs import DATASET_ENVS  # noqa: PLC0415
    from trials.generation.settings import LEVEL_NAMES  # noqa: PLC0415
    from tuner.store.spec import SEARCHER_KINDS  # noqa: PLC0415

    if spec.searcher not in SEARCHER_KINDS:
        raise StudyError(f"{source}: key 'searcher': '{spec.searcher}' unknown; known: {', '.join(SEARCHER_KINDS)}")
    if spec.baselines not in baseline_sources():
        raise StudyError(f"{source}: key 'baselines': '{spec.baselines}' unknown; known: "
                         f"{', '.join(baseline_sources())}")
    if spec.init_trials > spec.trials:
        raise StudyError(f"{source}: key 'init_trials': {spec.init_trials} exceeds trials={spec.trials}")
    if min(spec.calibrate.horizons, default=0) < 1:
        raise StudyError(f"{source}: key 'calibrate.horizons': model steps must be 1 or more, got "
                         f"{spec.calibrate.horizons}")
    try:
        base = spec.base_config()
        space = load_space(resolve_space(spec.space))
    except (UsageError, SearchSpaceError) as exc:
        raise StudyError(f"{source}: {exc}") from None
    stems = [Path(d.path).stem for d in spec.datasets]
    if len(set(stems)) != len(stems):
        raise StudyError(f"{source}: key 'datasets': two files share a name ({', '.join(stems)}); each names "
                         f"its sweep")
    for ds in spec.datasets:
        where = f"{source}: dataset {ds.path}"
        if ds.generated:
            if ds.env not in DATASET_ENVS:
                raise StudyError(f"{where}: env '{ds.env}' unknown; known: {', '.join(DATASET_ENVS)}")
            if ds.level not in LEVEL_NAMES:
                raise StudyError(f"{where}: level '{ds.level}' unknown; known: {', '.join(LEVEL_NAMES)}")
            name = f"{ds.env}-{ds.level}"
        elif any(v is not None for v in (ds.env, ds.level, ds.size)):
            raise StudyError(f"{where}: to generate it give env, level and size together")
        else:
            if not Path(ds.path).is_file():
                raise StudyError(f"{where}: file not found (give env, level and size to generate it)")
            try:
                meta = load_dataset(ds.path).meta
            except DatasetError as exc:
                raise StudyError(str(exc)) from None
            name = f"{meta.env}-{meta.level}"
        try:
            hand_tuned(spec.baselines, name)
        except ValueError as exc:
            raise StudyError(f"{where}: {exc}") from None
    try:
        cfg = TrialConfig.from_dict({**base, "dataset": spec.datasets[0].path}, "budget")
    except ConfigError as exc:
        raise StudyError(f"{source}: {exc}") from None
    n_eval = evaluations(cfg.epochs, cfg.eval_every)
    if cfg.score_window > n_eval:
        raise StudyError(f"{source}: budget: score_window={cfg.score_window} needs that many evaluations, but "
                         f"{cfg.epochs} epochs with eval_every={cfg.eval_every} give {n_eval}")
    keys = [p.key for p, _, _ in space.iter_parameters()] + list(space.fixed)
    for key in keys:
        if not has_key(cfg.to_dict(), key):
            raise StudyError(f"{source}: space {spec.space}: parameter '{key}' is not a trial config field")
    if spec.confirm is not None:
        _check_confirm(spec.confirm, cfg, source)


def _check_confirm(confirm: StudyConfirm, search: Any, source: str) -> None:
    """The confirm block: a positive ``top_k`` (or ``all``) and a valid budget larger than the search's."""
    from tuner.store.confirm_plan import confirm_overrides  # noqa: PLC0415

    if confirm.top_k != "all" and int(confirm.top_k) < 1:
        raise StudyError(f"{source}: key 'confirm.top_k': {confirm.top_k}; a positive count or 'all'")
    try:
        confirm_overrides(search, confirm.set)
    except UsageError as exc:
        raise StudyError(f"{source}: key 'confirm.set': {exc}") from None
