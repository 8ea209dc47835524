"""The sizes and repeat counts of a run: MOPO's defaults on Hopper for a full run, everything shrunk for
``--quick`` (a smoke test: its numbers say nothing about speed)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

HOPPER_OBS, HOPPER_ACT = 11, 3


@dataclass(frozen=True)
class Sizes:
    quick: bool
    # 1. matmul peak
    peak_n: int = 2048
    peak_repeats: int = 10
    # 2. SAC update
    sac_hidden: int = 256
    sac_layers: int = 2
    sac_batch: int = 256
    sac_buffer: int = 100_000
    sac_repeats: int = 200
    sac_block: int = 20
    # 3. ensemble training step
    ens_members: int = 7
    ens_hidden: int = 200
    ens_layers: int = 4
    ens_batch: int = 256
    ens_rows: int = 80_000
    ens_repeats: int = 60
    ens_block: int = 10
    # 4. rollout round
    rollout_states: int = 50_000
    rollout_horizon: int = 5
    rollout_members: int = 7
    rollout_elites: int = 5
    rollout_repeats: int = 2
    rollout_baseline_repeats: int = 3
    # 5, 9. one epoch of the trial engine, in a subprocess
    dataset_size: int = 100_000
    epoch_overrides: dict[str, Any] = field(default_factory=lambda: {"dynamics.max_epochs": 2})
    epochs: int = 3
    epochs_skipped: int = 1
    # 7. Ax proposals
    ax_spaces: tuple[str, ...] = ("paper", "quick")
    ax_completed: tuple[int, ...] = (20, 50)
    ax_init_trials: int = 8
    ax_repeats: int = 3
    # 8. Ray no-op trials
    ray_trials: int = 20
    # 6, 10. sweeps
    sweep_dataset_size: int = 20_000
    sweep_preset: str = "demo"
    sweep_trials: int = 4
    sweep_concurrency: tuple[int, ...] = (1, 2)
    sweep_cost_k: int = 20
    mopo_pool_epochs: int = 20
    """Pool epochs assumed for the MOPO-scale sweep-cost estimate (the demo preset's cap)."""
    # 11. pool training, float32 against bfloat16
    pool_epoch_size: int = 100_000
    pool_epoch_repeats: int = 3
    pool_stop_size: int = 20_000
    """Transitions of the pool trained to early stopping (``--pool-stop-size 100000``: a study's, ~1-2 h each)."""
    pool_overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return ("QUICK: every size shrunk for a smoke test; numbers say nothing about speed" if self.quick
                else "FULL: MOPO's default sizes on Hopper (obs 11, act 3)")


def full() -> Sizes:
    return Sizes(quick=False)


def quick() -> Sizes:
    tiny_trial = {"num_models": 5, "num_elites": 3, "steps_per_epoch": 40,
                  "rollout": {"batch_size": 300, "freq": 20, "retain_epochs": 2},
                  "dynamics": {"pool_size": 5, "hidden": 32, "layers": 2, "max_epochs": 2},
                  "sac": {"hidden": 32, "batch_size": 64}}
    return Sizes(
        quick=True, peak_n=512, peak_repeats=3,
        sac_hidden=64, sac_batch=64, sac_buffer=2000, sac_repeats=10, sac_block=5,
        ens_hidden=32, ens_layers=2, ens_batch=64, ens_rows=2000, ens_repeats=6, ens_block=3,
        rollout_states=1000, rollout_horizon=2, rollout_repeats=1, rollout_baseline_repeats=1,
        dataset_size=5000, epoch_overrides=tiny_trial, epochs=2, epochs_skipped=1,
        ax_spaces=("quick",), ax_completed=(5, 8), ax_init_trials=3, ax_repeats=1,
        ray_trials=2,
        sweep_dataset_size=5000, sweep_preset="tiny", sweep_trials=2, sweep_cost_k=20, mopo_pool_epochs=2,
        pool_epoch_size=3000, pool_epoch_repeats=1, pool_stop_size=3000,
        pool_overrides={"hidden": 32, "layers": 2, "max_epochs": 3},
    )
