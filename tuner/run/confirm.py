"""Running a confirmation (:mod:`tuner.store.confirm_plan` says what one is): write its plan, print each
dataset's expected cost, and make its missing runs through :func:`tuner.run.compare.run_pending`, cached and
resumed exactly as the comparison's."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from tuner.run.compare import RunSet, run_pending
from tuner.store.confirm_plan import (
    ConfirmPlan,
    confirm_progress,
    cost_line,
    pending_runs,
    planned_runs,
    run_label,
    save_plan,
)


def print_costs(plan: ConfirmPlan, concurrency: int) -> None:
    """Each dataset's runs still to make and their expected wall time (less what the runs with a checkpoint
    keep when resumed)."""
    for entry in plan.datasets:
        progress = confirm_progress(plan, entry)
        if progress.pending:
            print(f"[confirm {entry.experiment}] {cost_line(entry, progress, concurrency)}",
                  flush=True)


def run_confirm(plan: ConfirmPlan, concurrency: int, callbacks: list[Any] | None = None) -> dict[str, int]:
    """Write the plan, print each dataset's expected cost (all before the first run starts), and make every
    missing run; returns the runs started per experiment."""
    folder = save_plan(plan).parent
    for path, why in plan.skipped.items():
        print(f"note: {Path(path).name} not confirmed: {why}", file=sys.stderr)
    print_costs(plan, concurrency)
    started: dict[str, int] = {}
    for entry in plan.datasets:
        todo = pending_runs(plan, entry)
        started[entry.experiment] = len(todo)
        runs = RunSet(tag="confirm", folder=folder, experiment=entry.experiment, dataset=entry.dataset,
                      pool_dir=Path(plan.sweep) / "pools", gpus=plan.gpus_per_trial, total=len(planned_runs(entry)))
        run_pending(runs, [(run_label(arm, budget, seed, entry.updates), config) for arm, budget, seed, config in todo],
                    concurrency, callbacks)
    return started
