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

from benchmarks.report import TIME_UNITS
from trials.rollouts.penalties import PENALTIES

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
    report, stdout = run_bench(tmp_path, data_dir, "sac", "ensemble", "rollout", "epoch", "methods", "seeds",
                               "seeds_bf16", "pool", "fqe", "ax")
    expected = {"peak_matmul", "sac_update", "ensemble_step", *(f"rollout[{p}]" for p in PENALTIES),
                "rollout[max_aleatoric,bfloat16]", "pool_train", "epoch", "epoch.rollout", "epoch.sac", "memory",
                "epoch[bfloat16]", "sac_update[n10]", "sac_update[n10_eta1]", "mobile_update", "rollout[true]",
                "seeds[S=1]", "seeds[S=2]", "seeds[S=4]", "seeds_rollout[S=2]", "seeds_rollout[S=4]",
                "seeds[S=1,bfloat16]", "seeds[S=2,bfloat16]", "seeds[S=4,bfloat16]",
                "pool_epoch[bfloat16]", "pool_to_stop[bfloat16]", "fqe[K=4]", "ax_proposal[quick@5]",
                "ax_proposal[quick@8]"}
    check_rows(report, expected)
    rows = {r["name"]: r for r in report["rows"]}
    for name in ("sac_update", "ensemble_step", "rollout[max_aleatoric]", "rollout[max_aleatoric,bfloat16]",
                 "epoch[bfloat16]", "sac_update[n10]", "mobile_update", "rollout[true]", "seeds[S=4]",
                 "seeds_rollout[S=4]"):
        assert rows[name]["baseline"] is not None, name
    assert rows["peak_matmul"]["peak_fraction"] == 1.0
    for row in rows.values():  # one rule for every timed row with a baseline: its time over ours
        if row["baseline_value"] is not None and row["unit"] in TIME_UNITS:
            assert row["speedup"] == pytest.approx(row["baseline_value"] / row["value"]), row["name"]
    assert rows["epoch"]["details"]["rollout_fraction"] + rows["epoch"]["details"]["sac_fraction"] <= 1.0
    assert report["meta"]["mode"] == "quick" and report["meta"]["torch_threads"] == 1
    assert "QUICK" in stdout and "ensemble_step" in stdout  # the table is printed


def test_quick_run_of_the_compile_group(tmp_path: Path, data_dir: Path) -> None:
    """torch.compile of the seed-batched update (one S in quick mode): compiled and eager both timed."""
    report, _ = run_bench(tmp_path, data_dir, "seeds_compile")
    check_rows(report, {"peak_matmul", "seeds[S=1,compiled]"})
    row = {r["name"]: r for r in report["rows"]}["seeds[S=1,compiled]"]
    assert row["baseline"] == "eager" and row["details"]["compile_seconds"] > 0


@pytest.mark.slow
def test_quick_run_of_the_ray_groups(tmp_path: Path, data_dir: Path) -> None:
    report, _ = run_bench(tmp_path, data_dir, "ray", "sweeps")
    check_rows(report, {"peak_matmul", "ray_trial[reuse=False]", "ray_trial[reuse=True]", "trials_per_hour[c=1]",
                        "trials_per_hour[c=2]", "sweep_cost[K=20]"})
    rows = {r["name"]: r for r in report["rows"]}
    assert rows["trials_per_hour[c=1]"]["details"]["finished"] == 2


def test_precision_report_compares_formats_on_a_real_pool(tmp_path: Path, hopper_random_file: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "benchmarks.precision", "--dataset", str(hopper_random_file),
                           "--pool-dir", str(tmp_path / "pools"), "--pool-max-epochs", "1", "--states", "256"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    gap = next(line for line in lines if line.startswith("mean [delta_s, r]"))
    rmse = float(gap.split("float32 RMSE ")[1].split()[0])
    share = float(gap.split("(")[1].split("%")[0])
    assert rmse > 0 and share < 20  # bfloat16 differs, by far less than the model's own error
    for name in PENALTIES:
        if name != "none":
            row = next(line for line in lines if line.startswith(name + " "))
            assert float(row.split()[-1]) > 0.9, row  # penalties in both formats rank states alike
    agree = next(line for line in lines if line.startswith("bfloat16 autocast vs rounding"))
    assert float(agree.split(": ")[1].split("%")[0]) < 5, agree  # the two bfloat16 paths give the same numbers
    assert sum("predict of one" in line for line in lines) == 3


def test_peer_refuses_a_folder_without_offlinerl_kit(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "benchmarks.peer", "--okit", str(tmp_path / "absent")],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "no OfflineRL-Kit checkout there" in done.stderr and "Traceback" not in done.stderr
    assert done.stdout == "", "nothing measured, nothing printed"


def test_peer_ratios_read_against_both_okit_variants() -> None:
    from benchmarks.peer import VARIANTS, format_ratios

    medians = dict(zip(VARIANTS, (10.0, 8.0, 40.0, 30.0), strict=True))
    table = format_ratios(medians).splitlines()
    ours = next(line for line in table if line.startswith("ours "))
    assert "4.00x" in ours and "3.00x" in ours  # 40/10 against okit, 30/10 against okit[glibc]
