"""The benchmark suite runs end to end in --quick mode and writes a complete, well-formed JSON report.
Nothing here asserts on speed: quick sizes measure nothing, and this machine is shared."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from trials.penalties import PENALTIES

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the benchmark generates its small hopper-random dataset (once for this module)."""
    return tmp_path_factory.mktemp("bench-data")


def run_bench(tmp_path: Path, data_dir: Path, *only: str) -> tuple[dict[str, Any], str]:
    out = tmp_path / "bench.json"
    done = subprocess.run([sys.executable, "-m", "benchmarks.run", "--quick", "--out", str(out), "--data-dir",
                           str(data_dir), "--only", *only], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(out.read_text()), done.stdout


def positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def check_rows(report: dict[str, Any], expected: set[str]) -> None:
    rows = {r["name"]: r for r in report["rows"]}
    assert set(rows) == expected
    for name, row in rows.items():
        assert positive(row["value"]) and row["repeats"] >= 1 and row["unit"] and row["what"], name
        if row["flops"] is not None:  # a FLOP count gives a rate and a share of the measured peak
            assert positive(row["flops"]) and row["flop_formula"], name
            assert positive(row["gflops"]) and positive(row["peak_fraction"]), name
        if row["baseline"] is not None:  # a baseline measured in the same run gives a ratio
            assert positive(row["baseline_value"]) and positive(row["speedup"]), name


def test_quick_run_of_the_kernel_and_trial_groups(tmp_path: Path, data_dir: Path) -> None:
    report, stdout = run_bench(tmp_path, data_dir, "sac", "ensemble", "rollout", "epoch", "ax")
    expected = {"peak_matmul", "sac_update", "ensemble_step", *(f"rollout[{p}]" for p in PENALTIES), "pool_train",
                "epoch", "epoch.rollout", "epoch.sac", "memory", "ax_proposal[quick@5]", "ax_proposal[quick@8]"}
    check_rows(report, expected)
    rows = {r["name"]: r for r in report["rows"]}
    for name in ("sac_update", "ensemble_step", "rollout[max_aleatoric]"):
        assert rows[name]["baseline"] is not None, name
    assert rows["peak_matmul"]["peak_fraction"] == 1.0
    assert rows["epoch"]["details"]["rollout_fraction"] + rows["epoch"]["details"]["sac_fraction"] <= 1.0
    assert report["meta"]["mode"] == "quick" and report["meta"]["torch_threads"] == 1
    assert "QUICK" in stdout and "ensemble_step" in stdout  # the table is printed


@pytest.mark.slow
def test_quick_run_of_the_ray_groups(tmp_path: Path, data_dir: Path) -> None:
    report, _ = run_bench(tmp_path, data_dir, "ray", "sweeps")
    check_rows(report, {"peak_matmul", "ray_trial[reuse=False]", "ray_trial[reuse=True]", "trials_per_hour[c=1]",
                        "trials_per_hour[c=2]", "sweep_cost[K=20]"})
    rows = {r["name"]: r for r in report["rows"]}
    assert rows["trials_per_hour[c=1]"]["details"]["finished"] == 2
