"""Writing a results folder from what is stored: the calibration of a dynamics pool, and the report of
one or more sweeps (their best configurations exported beside it). Called by the CLI (``calibrate``,
``report``) and by the study's stages alike; heavy modules are imported inside."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuner.errors import UsageError

if TYPE_CHECKING:
    from trials.config import TrialConfig


def calibrate_to(cfg: TrialConfig, out_dir: Path, horizons: list[int], states: int, policy: str,
                 policy_file: Path | None = None) -> Any:
    """Calibrate the pool of ``cfg`` (trained if missing) and write the outputs into ``out_dir``; returns
    :class:`analysis.calibration.CalibrationOutputs`."""
    import torch  # noqa: PLC0415

    from analysis.calibration import write_calibration  # noqa: PLC0415
    from trials.data.dataset import load_dataset  # noqa: PLC0415
    from trials.measure.calibration import CalibrationConfig, CalibrationError, calibrate  # noqa: PLC0415
    from trials.models.pool import load_or_train_pool  # noqa: PLC0415

    ds = load_dataset(cfg.dataset, cfg.env)
    pool, info = load_or_train_pool(ds, cfg.seed, cfg.dynamics, cfg.resolved_pool_dir, cfg.device)
    print(f"pool {info.key}: {'trained' if info.trained_here else 'loaded'} ({info.path})", flush=True)
    calib = CalibrationConfig(states=states, horizon=max(horizons), policy="sac" if policy_file else policy,
                              policy_file=policy_file, num_models=cfg.num_models, num_elites=cfg.num_elites,
                              seed=cfg.seed)
    try:
        with torch.no_grad():
            result = calibrate(ds, pool, calib)
    except CalibrationError as exc:
        raise UsageError(str(exc)) from None
    provenance = {"dataset": cfg.dataset, "pool_key": info.key, "pool_dir": str(info.path.parent)}
    return write_calibration(result, out_dir, sorted(horizons), extra_meta=provenance)


def write_report(paths: list[Path], out: Path, title: str | None = None) -> Any:
    """Export each sweep's best configurations and write the report of ``paths`` into ``out``; returns
    :class:`analysis.report.ReportFiles`."""
    from tuner.errors import SweepError  # noqa: PLC0415
    from tuner.store.spec import SweepSpec  # noqa: PLC0415

    try:
        infos = [SweepSpec.load(p) for p in paths]
    except SweepError as exc:
        raise UsageError(str(exc)) from None
    names = [i.name for i in infos]
    if len(set(names)) != len(names):
        raise UsageError(f"sweeps with the same name ({', '.join(names)}): their rows could not be told apart")

    from analysis.report import build_report  # noqa: PLC0415
    from trials.data.dataset import DatasetError  # noqa: PLC0415
    from tuner.store.export import export_best  # noqa: PLC0415

    best: dict[tuple[str, str], Path] = {}
    for info in infos:
        for dataset in info.datasets:
            stem = Path(dataset).stem
            target = out / "configs" / f"best-{info.name}-{stem}.yaml"
            try:
                written = export_best(info.root, target, 1, stem)
            except (UsageError, DatasetError) as exc:  # no completed trial yet, or the dataset is elsewhere
                print(f"note: best configuration of {stem} not exported: {exc}")
                continue
            best[(info.name, stem)] = written[0]
    return build_report([i.root for i in infos], out, best, title=title)
