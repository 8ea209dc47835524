"""The tuner's facade: everything ``mbrl-tune`` does, as functions in four groups (as Ax's
``ax/api/client.py`` groups its methods), for the CLI and for scripts and notebooks alike.

- **Configure**: :func:`new_sweep`, :func:`load_sweep`, :func:`trial_config`, :func:`calibration_config`.
- **Run**: :func:`generate_dataset`, :func:`train`, :func:`run_sweep`, :func:`compare`, :func:`confirm`,
  :func:`calibrate`, :func:`estimate`, :func:`run_study`, :func:`verify`.
- **Read**: :func:`dataset_summary`, :func:`sweep_status`, :func:`is_study`, :func:`study_status`.
- **Export**: :func:`export_best`, :func:`write_report`.

Bad input raises one of :data:`INPUT_ERRORS` with a one-line message; a full filesystem raises
:class:`StorageFullError`; Ctrl-C or SIGTERM inside a Ray Tune run raises :class:`Interrupted` (its state
saved) or ``KeyboardInterrupt``. The functions print progress lines but set no process-wide state (log
levels, signal handlers, torch threads) and choose no exit code: that is the caller's (``tuner.cli``).
Ray, Ax, torch, Gymnasium and the analysis are imported inside the functions that need them, so a
mistyped argument fails before they load (tests/tuner/test_cli_inputs.py checks it). The study
(:mod:`tuner.run.study`) runs the same runner functions this facade calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trials.config import ConfigError, TrialConfig, apply_overrides, parse_overrides
from trials.data.dataset import DatasetError, load_dataset, save_hdf5, summary
from trials.envs import DATASET_ENVS, get_env_spec
from trials.files import DamagedFileError, read_torch
from trials.generation.settings import LEVEL_NAMES, GenerateConfig
from tuner.errors import StorageFullError, SweepError, UsageError
from tuner.faults.interrupts import Interrupted
from tuner.faults.storage import full_filesystem_line, storage_full, storage_guard
from tuner.store.presets import PRESETS, load_preset, resolve_space
from tuner.store.spec import OBJECTIVES, Objective, SweepSpec
from tuner.store.status import Completion

if TYPE_CHECKING:
    from analysis.calibration import CalibrationOutputs
    from analysis.compare import ComparisonTable
    from analysis.confirm import ConfirmTable
    from analysis.report import ReportFiles
    from trials.data.dataset import Dataset
    from tuner.run.verify import Verified

#: Errors that mean the input was wrong (exit 2 at the command line), each with a one-line message.
INPUT_ERRORS: tuple[type[Exception], ...] = (UsageError, DatasetError, ConfigError, FileNotFoundError,
                                             DamagedFileError)

__all__ = [
    "DATASET_ENVS", "INPUT_ERRORS", "LEVEL_NAMES", "OBJECTIVES", "PRESETS", "GenerateConfig", "Interrupted",
    "StorageFullError", "SweepError", "SweepSpec", "UsageError", "full_filesystem_line", "parse_overrides",
    "new_sweep", "load_sweep", "trial_config", "calibration_config",
    "generate_dataset", "train", "run_sweep", "compare", "confirm", "calibrate", "estimate", "run_study", "verify",
    "dataset_summary", "SweepStatus", "sweep_status", "is_study", "study_status",
    "export_best", "write_report",
]


# ================================================================ Configure
def new_sweep(*, name: str, storage: str, space: str, datasets: list[str], trials: int, concurrency: int = 1,
              seeds: Sequence[int] = (0,), searcher: str = "ax", init_trials: int = 8, early_stop: str = "none",
              baselines: str = "mopo_official", warm_start: Sequence[str] = (), base_file: str | None = None,
              preset: str = "demo", overrides: dict[str, Any] | None = None, search_seed: int = 0,
              gpus_per_trial: float = 0.0, log: str = "tensorboard", objective: Objective = "simulator") -> SweepSpec:
    """A new sweep's spec, validated (datasets hashed, space parsed, names checked); nothing written yet.
    ``space``: a YAML file or a built-in name; the base trial config is ``base_file`` if given, else the
    built-in ``preset``; ``log``: comma-separated trackers (``tensorboard,mlflow``, or ``none``);
    ``objective``: ``simulator``, ``fqe`` or ``model`` (what the searcher optimises)."""
    from tuner.run.sweep import new_spec  # noqa: PLC0415  (Ray import is slow)
    from tuner.run.trackers import parse_trackers  # noqa: PLC0415

    base = TrialConfig.load(base_file).to_dict() if base_file else load_preset(preset)
    base.pop("dataset", None)
    return new_spec(name=name, storage=storage, space_file=resolve_space(space), datasets=list(datasets),
                    trials=trials, concurrency=concurrency, seeds=list(seeds), searcher=searcher,
                    num_init_trials=init_trials, early_stop=early_stop, baselines=baselines,
                    warm_start=list(warm_start), base=base, overrides=overrides or {}, search_seed=search_seed,
                    gpus_per_trial=gpus_per_trial, trackers=parse_trackers(log), objective=objective)


def load_sweep(path: str | Path) -> SweepSpec:
    """The spec of the sweep in folder ``path`` (its ``sweep.json``)."""
    return SweepSpec.load(path)


def trial_config(file: str | Path, overrides: dict[str, Any] | None = None) -> TrialConfig:
    """A trial config from a YAML/JSON file (an exported ``best.yaml`` too), with dotted overrides."""
    return TrialConfig.load(file, overrides or {})


def calibration_config(dataset: str, *, policy: str = "data", config: str | None = None, seed: int | None = None,
                       env: str | None = None, pool_dir: str | None = None,
                       overrides: dict[str, Any] | None = None) -> tuple[TrialConfig, Path | None]:
    """The trial config whose dynamics, models and elites :func:`calibrate` measures, and the policy file
    (None for a policy kind: ``data``, ``random``). The config is ``config``, else the one stored in the
    ``policy`` file (the model that policy was trained with), else the defaults; then the dataset, seed,
    pool folder, env and ``overrides`` on top."""
    from trials.measure.calibration import POLICIES  # noqa: PLC0415

    policy_file = None
    if policy not in POLICIES:
        policy_file = Path(policy)
        if not policy_file.is_file():
            raise UsageError(f"--policy {policy}: neither a policy kind "
                             f"({', '.join(k for k in POLICIES if k != 'sac')}) nor a policy.pt file")
    given: dict[str, Any] = {"dataset": str(Path(dataset).resolve())}
    for key, value in (("seed", seed), ("env", env), ("pool_dir", str(Path(pool_dir).resolve()) if pool_dir else None)):
        if value is not None:
            given[key] = value
    given.update(overrides or {})
    if config:
        return TrialConfig.load(config, given), policy_file
    base: dict[str, Any] = {}
    if policy_file is not None:
        saved = read_torch(policy_file, "policy file", "give a policy.pt written by mbrl-tune train",
                           map_location="cpu", weights_only=True)
        if isinstance(saved, dict) and isinstance(saved.get("config"), dict):
            base = saved["config"]
    return TrialConfig.from_dict(apply_overrides(base, given), str(policy_file or "calibrate config")), policy_file


# ================================================================ Run
def generate_dataset(env: str, level: str, size: int, seed: int, out: str | Path,
                     settings: GenerateConfig | None = None, policy_dir: str | Path | None = None,
                     progress: bool = True) -> Dataset:
    """Generate a D4RL-style dataset in real MuJoCo and write it to ``out`` (HDF5, atomically); the
    behaviour policies are cached in ``policy_dir`` (default ``<out dir>/behaviour``)."""
    from trials.generation.generate import generate  # noqa: PLC0415

    out = Path(out)
    data = generate(get_env_spec(env), level, size, seed, settings or GenerateConfig(),
                    Path(policy_dir) if policy_dir else out.parent / "behaviour", progress=progress)
    save_hdf5(data, out)
    return data


def train(cfg: TrialConfig, out: str | Path, progress: bool = True) -> dict[str, Any]:
    """One trial in this process, without Ray; writes ``results.json`` and ``policy.pt`` into ``out``."""
    from trials.run.standalone import run_standalone  # noqa: PLC0415

    return run_standalone(cfg, Path(out), progress=progress)


def run_sweep(spec: SweepSpec, resume: bool = False) -> SweepStatus:
    """Run a new sweep (or ``resume`` one) to its trial count; returns its status after."""
    from tuner.run.sweep import run_sweep as run  # noqa: PLC0415  (Ray import is slow)

    with storage_guard(spec.root, f"mbrl-tune resume {spec.root}"):
        run(spec, resume=resume)
    return sweep_status(spec.root)


def compare(sweep: str | Path, *, source: str = "mopo_official", seeds: int = 3, only: list[str] | None = None,
            concurrency: int | None = None, run: bool = True) -> ComparisonTable:
    """Best found against hand-tuned on ``seeds`` fresh seeds: run what is missing (unless ``run`` is
    False), then write the table from every cached run."""
    from analysis.compare import write_comparison  # noqa: PLC0415
    from tuner.run.compare import run_compare  # noqa: PLC0415
    from tuner.store.compare_plan import plan_compare, save_plan  # noqa: PLC0415

    sweep = Path(sweep)
    plan = plan_compare(sweep, source, seeds, only)
    if run:
        with storage_guard(sweep, f"mbrl-tune compare {sweep} --seeds {seeds}"):
            run_compare(plan, concurrency or load_sweep(sweep).concurrency)
    else:
        save_plan(plan)
    table = write_comparison(sweep, source)
    assert table is not None  # the plan was just written
    return table


def confirm(sweep: str | Path, *, top_k: int | None = 2, seeds: int = 3, overrides: dict[str, Any] | None = None,
            source: str = "mopo_official", only: list[str] | None = None, concurrency: int | None = None,
            run: bool = True) -> ConfirmTable:
    """The hand-tuned baseline and the ``top_k`` best distinct configurations (None: every finished trial)
    at the search budget and the confirm budget (``overrides``; default ten times the epochs): print the
    expected cost, run what is missing (unless ``run`` is False), then write the table."""
    from analysis.confirm import write_confirmation  # noqa: PLC0415
    from tuner.run.confirm import print_costs, run_confirm  # noqa: PLC0415
    from tuner.store.confirm_plan import plan_confirm, save_plan  # noqa: PLC0415

    sweep = Path(sweep)
    plan = plan_confirm(sweep, source, top_k, seeds, overrides or {}, only)
    workers = concurrency or load_sweep(sweep).concurrency
    if run:
        with storage_guard(sweep, "the same mbrl-tune confirm command"):
            run_confirm(plan, workers)
    else:
        save_plan(plan)
        print_costs(plan, workers)
    return write_confirmation(plan)


def calibrate(cfg: TrialConfig, out: str | Path, horizons: Sequence[int] = (1, 5), states: int = 500,
              policy: str = "data", policy_file: Path | None = None) -> CalibrationOutputs:
    """Every penalty heuristic of ``cfg``'s pool (trained if missing) against the true model error at
    ``horizons``; writes the tables, ``calibration.npz`` and scatter plots into ``out``."""
    from tuner.run.outputs import calibrate_to  # noqa: PLC0415

    horizons = sorted(set(horizons))
    if not horizons or horizons[0] < 1:
        raise UsageError(f"--horizons {' '.join(map(str, horizons))}: horizons are model steps, 1 or more")
    return calibrate_to(cfg, Path(out), horizons, states, policy, policy_file)


def estimate(sweep: str | Path, *, fqe_steps: int | None = None, only: list[str] | None = None) -> dict[str, Path]:
    """Offline estimates of every finished trial's final policy (FQE and the return in an independent pool)
    beside its simulator score, with each estimator's rank agreement; returns the JSON file per dataset.
    ``fqe_steps``: None takes the sweep's own ``estimate.fqe_steps``."""
    from tuner.run.estimate import estimate_sweep  # noqa: PLC0415

    return estimate_sweep(Path(sweep), fqe_steps, only)


def verify(path: str | Path, *, epochs: int | None = None, every: bool = False,
           datasets: Sequence[str | Path] = ()) -> list[Verified]:
    """Re-run the first ``epochs`` epochs (None: up to the first evaluation) of the stored trials under
    ``path`` here (one per experiment folder, or ``every`` one) and compare every reported field with the
    stored report (:mod:`tuner.run.verify`); ``datasets`` stand in, by file name, for moved dataset files."""
    from tuner.run.verify import verify as verify_trials  # noqa: PLC0415

    return verify_trials(Path(path), epochs, every, [Path(d) for d in datasets])


def run_study(file: str | Path) -> int:
    """Run or resume the study of ``file``; 0 when every stage is complete, 1 when one is not."""
    from tuner.run.study import run_study as run  # noqa: PLC0415  (Ray import is slow)
    from tuner.store.study_spec import load_study_file  # noqa: PLC0415

    with storage_guard(Path(load_study_file(file).storage), f"mbrl-tune study {file}"):
        return run(file)


# ================================================================ Read
def dataset_summary(file: str, env: str | None = None) -> dict[str, Any]:
    """Size, episodes, returns and behaviour score of a dataset file (or ``d4rl:`` / ``minari:`` name)."""
    return summary(load_dataset(file, env=env))


@dataclass(frozen=True)
class SweepStatus:
    """Where a sweep stands."""

    table: str
    """The trials table, as ``mbrl-tune status`` prints it."""
    confirm_lines: list[str]
    """One line per stored confirmation: runs finished of planned, and those in progress."""
    incomplete: dict[str, Completion]
    """Datasets short of their trial count, or with errored trials."""
    storage_full: bool = False
    """Whether the sweep's filesystem is full now (under 1 MiB free): trials that failed on it may have
    had no room to write why, so their error files cannot say it."""

    @property
    def complete(self) -> bool:
        return not self.incomplete


def sweep_status(path: str | Path) -> SweepStatus:
    """The trials table of the sweep in ``path`` and what is still missing (read from its folder)."""
    from tuner.store.confirm_plan import progress_lines  # noqa: PLC0415
    from tuner.store.status import status_table, sweep_completion  # noqa: PLC0415

    path = Path(path)
    incomplete = {d: c for d, c in sweep_completion(path).items() if not c.complete}
    return SweepStatus(table=status_table(path), confirm_lines=progress_lines(path), incomplete=incomplete,
                       storage_full=storage_full(path))


def is_study(path: str | Path) -> bool:
    """Whether ``path`` is a study folder (it holds the ``study.yaml`` its first run wrote)."""
    from tuner.store.study_status import is_study_folder  # noqa: PLC0415

    return is_study_folder(Path(path))


def study_status(path: str | Path) -> str:
    """Where the study in ``path`` stands, per dataset and stage (read from its folder)."""
    from tuner.store.study_status import study_status as status  # noqa: PLC0415

    return status(Path(path))


# ================================================================ Export
def export_best(sweep: str | Path, out: str | Path, top: int = 1, dataset: str | None = None) -> list[Path]:
    """Write the ``top`` best configurations of one dataset's experiment as train-ready YAML files."""
    from tuner.store.export import export_best as export  # noqa: PLC0415

    return export(Path(sweep), Path(out), top, dataset)


def write_report(sweeps: Sequence[str | Path], out: str | Path, title: str | None = None) -> ReportFiles:
    """``report.html`` and ``report.md`` of one or more sweeps (best configurations exported beside them); a
    study folder stands for its sweeps, and gives the report the study's title."""
    from tuner.run.outputs import write_report as write  # noqa: PLC0415
    from tuner.store.study_folder import study_sweeps  # noqa: PLC0415

    paths: list[Path] = []
    for path in map(Path, sweeps):
        if is_study(path):
            theirs, study_title = study_sweeps(path)
            paths += theirs
            title = title or study_title
        else:
            paths.append(path)
    return write(paths, Path(out), title=title)
