"""``mbrl-tune study FILE``: the whole experiment in one resumable command.

For each dataset of the study file (``tuner.store.study_spec``): generate (if missing) -> sweep -> compare on
fresh seeds -> calibrate; then one report across all datasets. The study folder ``<storage>/<name>/``:

- ``study.yaml``: the validated study (paths resolved), written when it starts; a later run of the same
  name must describe the same study;
- ``stages.json``: each finished stage with its wall-clock seconds (summed over the runs it took);
- ``sweeps/<dataset stem>/``: that dataset's sweep (compare runs and, once they are all done, their
  table ``comparison.csv``/``.json`` in ``compare/<source>/``; calibration in ``calibration/``);
- ``report/``: ``report.html``, ``report.md``, ``figures/``, ``configs/``;
- ``.study.lock``: held by the running driver.

The same command resumes a study killed at any point: a finished stage (in ``stages.json``, or whose
outputs are complete) is skipped, an interrupted sweep is resumed through ``Tuner.restore``, the
comparison continues a run it left unfinished from its checkpoint and runs only its missing (arm,
seed) runs. Exit 0 only when every stage completed; a stage that
ends with errored or missing trials prints what is missing and the study exits 1. Ctrl-C or SIGTERM
stops the study inside the stage it is in (its state saved, exit 130), never going on to the next.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from filelock import FileLock, Timeout
from ray import tune

from trials.files import DamagedFileError
from tuner.store.durations import duration
from tuner.store.study_folder import (
    STAGE_NAMES,
    STUDY_FILE,
    Stages,
    eta_line,
    read_study_record,
    say,
    study_sweeps,
    sweep_dir,
    sweep_missing,
    write_study_record,
)
from tuner.store.study_spec import StudyDataset, StudyError, StudySpec, check_study, load_study_file


class StudyEta(tune.Callback):
    """After each finished trial, a line with the study's progress and remaining time (read from disk, so
    a restored sweep's copy of this callback reports correctly too)."""

    def __init__(self, folder: Path) -> None:
        self.folder = str(folder)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        say(eta_line(Path(self.folder)))


def _generate(spec: StudySpec, ds: StudyDataset, folder: Path) -> bool:
    from trials.data.dataset import DatasetError, load_dataset, save_hdf5  # noqa: PLC0415
    from trials.envs import get_env_spec  # noqa: PLC0415
    from trials.generation.generate import generate  # noqa: PLC0415
    from trials.generation.settings import GenerateConfig  # noqa: PLC0415

    path = Path(ds.path)
    present = None
    if path.is_file() and ds.generated:
        try:
            present = load_dataset(path)
        except DatasetError as exc:  # derived from its recipe: made again (a sweep checks its content hash)
            say(f"{exc}; generating it again from its recipe")
            path.unlink()
    if path.is_file():
        if present is not None:  # a file of that name must be what the recipe would make
            found = (present.meta.env, present.meta.level, present.meta.seed, len(present))
            wanted = (ds.env, ds.level, ds.seed, ds.size)
            if found != wanted:
                raise StudyError(f"{path}: holds {found[0]}-{found[1]} seed {found[2]}, {found[3]} transitions; the "
                                 f"study asks {wanted[0]}-{wanted[1]} seed {wanted[2]}, {wanted[3]}: move it or "
                                 f"change the study's path")
        say(f"{path.stem}: dataset present ({path})")
        return True
    assert ds.env is not None and ds.level is not None and ds.size is not None  # checked by check_study
    say(f"{path.stem}: generating {ds.env}-{ds.level}, {ds.size} transitions, seed {ds.seed}")
    data = generate(get_env_spec(ds.env), ds.level, ds.size, ds.seed, GenerateConfig(), path.parent / "behaviour",
                    progress=False)
    save_hdf5(data, path)
    return True


def _sweep(spec: StudySpec, ds: StudyDataset, folder: Path) -> bool:
    from tuner.run.sweep import new_spec, run_sweep  # noqa: PLC0415
    from tuner.store.compare_plan import fresh_seeds  # noqa: PLC0415
    from tuner.store.presets import resolve_space  # noqa: PLC0415
    from tuner.store.spec import SPEC_FILE, SweepSpec  # noqa: PLC0415

    root = sweep_dir(folder, ds)
    spare = fresh_seeds(spec.seeds, spec.compare.seeds)  # the comparison's pools, on cores the sweep leaves idle
    if (root / SPEC_FILE).is_file():
        missing = sweep_missing(spec, ds, folder)
        if missing is None:
            return True
        say(f"{root.name}: resuming the sweep ({missing})")
        run_sweep(SweepSpec.load(root), resume=True, callbacks=[StudyEta(folder)],  # used if nothing to restore
                  spare_pool_seeds=spare)
    else:
        sweep = new_spec(name=root.name, storage=str(root.parent), space_file=resolve_space(spec.space),
                         datasets=[ds.path], trials=spec.trials, concurrency=spec.concurrency, seeds=list(spec.seeds),
                         searcher=spec.searcher, num_init_trials=spec.init_trials, early_stop="none",
                         baselines=spec.baselines, warm_start=[], base=spec.base_config(), overrides={},
                         search_seed=spec.search_seed, objective=spec.objective)
        run_sweep(sweep, callbacks=[StudyEta(folder)], spare_pool_seeds=spare)
    missing = sweep_missing(spec, ds, folder)
    if missing is not None:
        say(f"{root.name}: sweep incomplete: {missing}; run the same command again to resume it")
    return missing is None


def _compare(spec: StudySpec, ds: StudyDataset, folder: Path) -> bool:
    """Run the comparison's missing runs; once none is left, write its table beside them and print it."""
    from analysis.compare import format_comparison, write_comparison  # noqa: PLC0415
    from tuner.run.compare import pending_runs, run_compare  # noqa: PLC0415
    from tuner.store.compare_plan import compare_dir, plan_compare  # noqa: PLC0415

    root = sweep_dir(folder, ds)
    plan = plan_compare(root, spec.baselines, spec.compare.seeds)
    run_compare(plan, spec.compare.concurrency or spec.concurrency, callbacks=[StudyEta(folder)])
    left = sum(len(v) for v in pending_runs(plan, compare_dir(root, spec.baselines)).values())
    if left:
        say(f"{root.name}: comparison incomplete: {left} runs did not finish; run the same command again")
        return False
    table = write_comparison(root, spec.baselines)
    assert table is not None  # run_compare wrote the plan
    print(format_comparison(table.rows), flush=True)
    say(f"{root.name}: comparison table in {table.csv} and {table.json}")
    return True


def _calibrate(spec: StudySpec, ds: StudyDataset, folder: Path) -> bool:
    from search_spaces.parse import load_space  # noqa: PLC0415
    from tuner.run.outputs import calibrate_to  # noqa: PLC0415
    from tuner.store.spec import (
        SweepSpec,  # noqa: PLC0415
        trial_base,  # noqa: PLC0415
    )

    root = sweep_dir(folder, ds)
    sweep = SweepSpec.load(root)
    # The sweep's own pool (its first seed, the sweep's architecture), the hand-tuned ensemble size.
    cfg = trial_base(sweep, ds.path, load_space(root / "space.yaml")).with_overrides({"seed": sweep.seeds[0]})
    calibrate_to(cfg, root / "calibration", list(spec.calibrate.horizons), spec.calibrate.states,
                 spec.calibrate.policy)
    return True


def _confirm(spec: StudySpec, ds: StudyDataset, folder: Path) -> bool:
    """Run the confirmation's missing runs (``tuner.run.confirm``); once none is left, write and print its table."""
    from analysis.confirm import format_confirmation, write_confirmation  # noqa: PLC0415
    from tuner.run.confirm import pending_runs, run_confirm  # noqa: PLC0415
    from tuner.store.confirm_plan import plan_confirm  # noqa: PLC0415

    assert spec.confirm is not None  # the stage runs only with a confirm block
    root = sweep_dir(folder, ds)
    plan = plan_confirm(root, spec.baselines, spec.confirm.k, spec.confirm.seeds, dict(spec.confirm.set))
    # It prints its own cost estimate; after each run, the study's progress and time left.
    run_confirm(plan, spec.confirm.concurrency or spec.concurrency, callbacks=[StudyEta(folder)])
    left = sum(len(pending_runs(plan, entry)) for entry in plan.datasets)
    if left:
        say(f"{root.name}: confirmation incomplete: {left} runs did not finish; run the same command again")
        return False
    table = write_confirmation(plan)
    print(format_confirmation(table.rows), flush=True)
    say(f"{root.name}: confirmation table in {table.csv} and {table.json}")
    return True


#: Stage -> its runner, in the order a dataset goes through them (``confirm`` only with a confirm block).
STAGES: dict[str, Callable[[StudySpec, StudyDataset, Path], bool]] = {
    "generate": _generate, "sweep": _sweep, "compare": _compare, "calibrate": _calibrate, "confirm": _confirm}
assert tuple(STAGES) == STAGE_NAMES, "tuner.store.study_folder.STAGE_NAMES lists the stages status reads"
#: Study keys that may change between runs of one study: a confirm block added or changed only adds runs
#: (every run is cached by its config); ``storage`` is where the folder is now (a study folder may move).
MAY_CHANGE = ("confirm", "storage")


# ---------------------------------------------------------------- driver
def _stored_spec(folder: Path, spec: StudySpec, source: str) -> None:
    """Write ``study.yaml`` on the first run; on later runs the file must describe the same study."""
    path = folder / STUDY_FILE
    mine = spec.model_dump(mode="json")
    if not path.is_file():
        write_study_record(path, mine)
        return
    try:
        stored = read_study_record(path)
    except (UnicodeDecodeError, yaml.YAMLError, DamagedFileError):
        stored = None
    if not isinstance(stored, dict):  # damaged: the study file given is what it was written from
        say(f"{path}: damaged; written again from {source}")
        write_study_record(path, mine)
        return
    for key in mine:
        if key in MAY_CHANGE:
            continue
        theirs, ours = stored.get(key), mine[key]
        if key == "datasets":  # the same recipes and file names, wherever the files are now
            theirs, ours = _located_nowhere(theirs), _located_nowhere(ours)
        if theirs != ours:
            raise StudyError(f"{source}: key '{key}' differs from the study already in {folder} ({stored.get(key)!r} "
                             f"there); resume it unchanged or give the study another name")
    if any(stored.get(key) != mine[key] for key in MAY_CHANGE if key in mine):
        write_study_record(path, {**stored, **{k: mine[k] for k in MAY_CHANGE if k in mine}})


def _located_nowhere(datasets: Any) -> Any:
    """A study's datasets with each path reduced to its file name."""
    if not isinstance(datasets, list):
        return datasets
    return [{**d, "path": Path(d["path"]).name} if isinstance(d, dict) and "path" in d else d for d in datasets]


def run_study(file: str | Path) -> int:
    """Run or resume the study of ``file``; returns the exit code (0: every stage complete)."""
    spec = load_study_file(file)
    check_study(spec, str(file))
    folder = spec.folder()
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(folder / ".study.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise StudyError(f"{folder}: study is already running (another driver holds "
                         f"{folder / '.study.lock'})") from None
    try:
        _stored_spec(folder, spec, str(file))
        return _run_stages(spec, folder)
    finally:
        lock.release()


def _run_stages(spec: StudySpec, folder: Path) -> int:
    stages = Stages(folder)
    start = time.perf_counter()
    say(f"{spec.name}: {len(spec.datasets)} datasets x {spec.trials} trials, folder {folder}")
    incomplete: list[str] = []
    for ds in spec.datasets:
        stem = Path(ds.path).stem
        for stage, runner in STAGES.items():
            if stage == "confirm" and spec.confirm is None:
                continue
            key = f"{stem}/{stage}"
            if stages.done(key):
                say(f"{key}: done earlier ({duration(stages.data[key]['seconds'])})")
                continue
            say(f"{key}: started")
            stages.record(key, 0.0, False)  # `mbrl-tune status` shows it as started
            t0 = time.perf_counter()
            try:
                ok = runner(spec, ds, folder)
            except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the stage saved its state; stop the study here
                seconds = time.perf_counter() - t0
                stages.record(key, seconds, False)
                say(f"{key}: interrupted after {duration(seconds)}; run the same command again to resume it")
                raise
            seconds = time.perf_counter() - t0
            stages.record(key, seconds, ok)
            say(f"{key}: {'done' if ok else 'incomplete'} in {duration(seconds)}"
                + (f"; {eta_line(folder)}" if stage in ("sweep", "compare", "confirm") else ""))
            if not ok:
                incomplete.append(key)
                break  # the later stages of this dataset need this one
    if incomplete:
        say(f"incomplete: {', '.join(incomplete)}; the report waits for them. Run the same command again.")
        return 1
    if not stages.done("report"):
        from tuner.run.outputs import write_report  # noqa: PLC0415

        t0 = time.perf_counter()
        sweeps, title = study_sweeps(folder)
        files = write_report(sweeps, folder / "report", title=title)
        stages.record("report", time.perf_counter() - t0, True)
        say(f"report: {files.html} and {files.markdown}")
    total = sum(float(v["seconds"]) for v in stages.data.values())
    say(f"{spec.name}: complete ({duration(time.perf_counter() - start)} this run, {duration(total)} in all "
        f"stages); report at {folder / 'report' / 'report.html'}")
    return 0

