"""The sweep machinery's costs: the Ax searcher's proposal time, Ray Tune's overhead per trial, trials per
hour of real sweeps (``tuner.run.sweep.run_sweep``, the code behind ``mbrl-tune sweep``) at concurrency 1 and 2,
and the cost of a K-trial sweep with the shared pool against retraining the pool in every trial."""

from __future__ import annotations

import contextlib
import logging
import math
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.report import Row
from benchmarks.sizes import Sizes
from search_spaces import load_builtin
from trials.config import TrialConfig
from trials.data.dataset import load_dataset
from trials.models.pool import load_or_train_pool


def synthetic_score(overrides: dict[str, Any]) -> float:
    """A cheap analytic objective over the searched keys: best at lambda 1, horizon 5, real_ratio 0.05,
    7 models, with max_aleatoric ahead of the other penalties."""
    lam = float(overrides.get("lam", 1.0))
    horizon = float(overrides.get("rollout.horizon", 5))
    score = 60.0 - 10.0 * math.log10(lam) ** 2 - (horizon - 5.0) ** 2 / 5.0
    score -= 20.0 * (float(overrides.get("real_ratio", 0.05)) - 0.05) ** 2 + abs(overrides.get("num_models", 7) - 7)
    return score - (0.0 if overrides.get("penalty") == "max_aleatoric" else 5.0)


def quiet_ax() -> None:
    """Keep Ax's INFO lines (one per attached, completed or generated trial) out of the report."""
    from ax.utils.common.logger import set_stderr_log_level  # noqa: PLC0415

    set_stderr_log_level(logging.WARNING)


def ax_proposals(sizes: Sizes) -> list[Row]:
    """Row 7: seconds of one ``get_next_trials(max_trials=1)`` of ``tuner.search.ax.AxSearcher`` (one torch
    thread, as in sweeps) once ``n`` synthetic trials are completed. Timed proposals are then marked
    abandoned, so the model keeps exactly ``n`` completed trials."""
    quiet_ax()
    from tuner.search.ax import AxSearcher  # noqa: PLC0415  (Ax import is slow)

    rows = []
    for space_name in sizes.ax_spaces:
        space = load_builtin(space_name)
        searcher = AxSearcher(space, "score", "max", num_init_trials=sizes.ax_init_trials, seed=0)
        client = searcher.client
        rng = np.random.default_rng(0)
        completed = 0
        warmup = 1
        for target in sizes.ax_completed:
            while completed < target:
                overrides = space.sample_random(rng)
                index = client.attach_trial(parameters=space.encode(overrides))
                client.complete_trial(index, raw_data={"score": synthetic_score(overrides)})
                completed += 1
            times, nodes = [], []
            for r in range(warmup + sizes.ax_repeats):
                trial_id = f"bench-{space_name}-{target}-{r}"
                searcher.suggest(trial_id)
                if r >= warmup:
                    times.append(searcher.proposal_times[-1])
                    nodes.append(searcher.generation_nodes[searcher.trial_indices[trial_id]])
                searcher.on_trial_complete(trial_id, result=None)  # abandoned: no data for the model
            warmup = 0
            rows.append(Row(
                f"ax_proposal[{space_name}@{target}]", "ax", float(np.median(times)), "s/proposal", len(times),
                f"AxSearcher.suggest -> Client.get_next_trials(max_trials=1) on {space_name}.yaml "
                f"({len(list(space.iter_parameters()))} Ax parameters) with {target} completed synthetic trials "
                f"(analytic score), {sizes.ax_init_trials}-trial initial design; 1 torch thread",
                details={"samples_s": [round(t, 3) for t in times], "generation_nodes": ",".join(sorted(set(nodes)))},
            ))
    return rows


@contextlib.contextmanager
def local_ray() -> Iterator[None]:
    """A Ray instance of this process on 2 CPUs, shut down afterwards (never ``ray stop``)."""
    import ray  # noqa: PLC0415

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        yield
    finally:
        ray.shutdown()


def _noop(config: dict[str, Any]) -> None:
    """A function trainable that does nothing."""


def _noop_fit(n: int, reuse: bool, storage: Path, name: str) -> float:
    """Wall seconds of a Tuner running ``n`` no-op trials one at a time."""
    from ray import tune  # noqa: PLC0415

    tuner = tune.Tuner(_noop, param_space={"i": tune.grid_search(list(range(n)))},
                       tune_config=tune.TuneConfig(reuse_actors=reuse, max_concurrent_trials=1),
                       run_config=tune.RunConfig(name=name, storage_path=str(storage), verbose=0))
    start = time.perf_counter()
    tuner.fit()
    return time.perf_counter() - start


def ray_overhead(sizes: Sizes, work_dir: Path) -> list[Row]:
    """Row 8: seconds per no-op trial of ``ray.tune.Tuner`` (one at a time), without and with actor reuse.
    Needs :func:`local_ray`."""
    storage = work_dir / "ray-noop"
    storage.mkdir(parents=True, exist_ok=True)
    with open(storage / "tune.log", "w") as log, contextlib.redirect_stdout(log):  # Tune's experiment boxes
        _noop_fit(1, False, storage, "warmup")
        per = {reuse: _noop_fit(sizes.ray_trials, reuse, storage, f"noop-reuse-{reuse}") / sizes.ray_trials
               for reuse in (False, True)}
    what = (f"ray.tune.Tuner over {sizes.ray_trials} no-op function trials, max_concurrent_trials=1, local "
            "ray.init(num_cpus=2); wall time of fit() / trials, after a 1-trial warm-up fit")
    return [
        Row("ray_trial[reuse=False]", "ray", per[False], "s/trial", sizes.ray_trials, f"{what}, reuse_actors=False",
            details={"statistic": "mean over the trials of one fit"}),
        Row("ray_trial[reuse=True]", "ray", per[True], "s/trial", sizes.ray_trials, f"{what}, reuse_actors=True",
            baseline="reuse_actors=False", baseline_value=per[False],
            details={"statistic": "mean over the trials of one fit"}),
    ]


def _sweep_pool(dataset: Path, preset: dict[str, Any], pool_dir: Path) -> tuple[Path, float, int]:
    """Train (here, timed) the pool a sweep of ``preset`` on ``dataset`` will ask for."""
    cfg = TrialConfig.from_dict({**preset, "dataset": str(dataset)}, "sweep preset")
    _, info = load_or_train_pool(load_dataset(dataset), 0, cfg.dynamics, pool_dir)
    return info.path, info.train_seconds, info.epochs


def _one_sweep(dataset: Path, preset: dict[str, Any], trials: int, concurrency: int, pool_file: Path,
               storage: Path) -> tuple[float, int]:
    """Run one real sweep (quick.yaml, Ax, one seed) with its pool pre-placed; wall seconds, finished trials."""
    from tuner.run.sweep import new_spec, run_sweep  # noqa: PLC0415
    from tuner.store.presets import resolve_space  # noqa: PLC0415
    from tuner.store.records import read_trials  # noqa: PLC0415

    spec = new_spec(name=f"c{concurrency}", storage=str(storage), space_file=resolve_space("quick"),
                    datasets=[str(dataset)], trials=trials, concurrency=concurrency, seeds=[0], searcher="ax",
                    num_init_trials=8, early_stop="none", baselines="mopo_official", warm_start=[], base=preset,
                    overrides={}, search_seed=0)
    spec.pool_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(pool_file, spec.pool_dir / pool_file.name)
    log = storage / f"c{concurrency}.log"
    with open(log, "w") as out, contextlib.redirect_stdout(out):
        start = time.perf_counter()
        folders = run_sweep(spec)
        wall = time.perf_counter() - start
    finished = sum(r.status == "finished" for d in folders.values() for r in read_trials(d))
    return wall, finished


def sweep_rows(sizes: Sizes, dataset: Path, work_dir: Path, measured: dict[str, Row]) -> list[Row]:
    """Rows 10 and 6 (needs :func:`local_ray`): trials per hour of real sweeps, then the K-trial sweep cost."""
    from tuner.store.presets import load_preset  # noqa: PLC0415

    quiet_ax()
    preset = load_preset(sizes.sweep_preset)
    preset.pop("dataset", None)
    pool_file, pool_s, pool_epochs = _sweep_pool(dataset, preset, work_dir / "sweep-pool")
    rows: list[Row] = []
    rates: dict[int, float] = {}
    for c in sizes.sweep_concurrency:
        wall, finished = _one_sweep(dataset, preset, sizes.sweep_trials, c, pool_file, work_dir / "sweeps")
        rates[c] = sizes.sweep_trials / wall * 3600
        row = Row(
            f"trials_per_hour[c={c}]", "sweeps", rates[c], "trials/h", sizes.sweep_trials,
            f"real sweep (tuner.run.sweep.run_sweep, as mbrl-tune sweep: quick.yaml, Ax, 1 seed, preset "
            f"'{sizes.sweep_preset}') of {sizes.sweep_trials} trials at concurrency {c} on {dataset.name}, pool "
            "trained beforehand; trials / wall time of run_sweep (includes its start-up: dataset load, pool-load "
            "task, searcher)",
            details={"wall_s": wall, "finished": finished, "seconds_per_trial": wall / sizes.sweep_trials},
        )
        if c != sizes.sweep_concurrency[0]:
            first = sizes.sweep_concurrency[0]
            row.baseline, row.baseline_value = f"concurrency {first}", rates[first]
            row.speedup = rates[c] / rates[first]
        rows.append(row)
    rows.append(_sweep_cost(sizes, pool_s, pool_epochs, 3600 / rates[sizes.sweep_concurrency[0]], measured))
    return rows


def _sweep_cost(sizes: Sizes, pool_s: float, pool_epochs: int, trial_s: float, measured: dict[str, Row]) -> Row:
    """Row 6: ``T_shared = T_pool + K T_trial`` against ``T_retrain = K (T_pool + T_trial)``, serial."""
    k = sizes.sweep_cost_k
    shared, retrain = pool_s + k * trial_s, k * (pool_s + trial_s)
    details: dict[str, Any] = {"K": k, "T_pool_s": pool_s, "pool_epochs": pool_epochs, "T_trial_s": trial_s,
                               "formula": "T_shared = T_pool + K*T_trial; T_retrain = K*(T_pool + T_trial)"}
    pool_row, epoch_row = measured.get("pool_train"), measured.get("epoch")
    if pool_row is not None and epoch_row is not None and not sizes.quick:
        mopo_pool = pool_row.value * sizes.mopo_pool_epochs
        mopo_trial = 1000 * epoch_row.value
        details.update(mopo_scale_T_pool_s=mopo_pool, mopo_scale_T_trial_s=mopo_trial,
                       mopo_scale_speedup=k * (mopo_pool + mopo_trial) / (mopo_pool + k * mopo_trial),
                       mopo_scale_assumptions=f"pool: {sizes.mopo_pool_epochs} epochs x row pool_train; "
                                              "trial: 1000 epochs x row epoch, evaluation excluded")
    return Row(
        f"sweep_cost[K={k}]", "sweeps", shared, "s", 1,
        f"computed: {k}-trial sweep at preset '{sizes.sweep_preset}' with the shared pool (trained once, "
        f"measured: {pool_s:.1f} s for {pool_epochs} epochs) and T_trial = 3600 / trials_per_hour[c=1]",
        baseline="pool per trial", baseline_value=retrain,
        baseline_what="the same sweep with the pool retrained in every trial: K * (T_pool + T_trial)",
        speedup=retrain / shared, details=details,
    )
