"""The prepared GPU check (benchmarks/gpu_check.py) runs end to end on the CPU at toy sizes, so that it is
ready the day a session is lent a CUDA device (its CUDA-only sections say they were skipped)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_the_gpu_check_runs_on_the_cpu(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", "--device", "cpu", "--quick", "--out",
                           str(tmp_path)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    sections = ("device", "cuda tests", "checkpoint", "syncs", "methods", "ray", "timings")
    assert all(report[s]["ok"] for s in sections), {s: report[s] for s in sections if not report[s]["ok"]}
    assert report["checkpoint"]["result"]["identical"]  # on the CPU a resumed trial is the same trial
    assert set(report["methods"]["result"]) >= {"mobile", "edac", "true_dynamics", "pool_bfloat16"}
    assert report["timings"]["result"]["projected_1M_updates_h"] > 0
    assert "not schedulable" in json.dumps(report["ray"]["result"])  # no GPU here: the 0.5-GPU task waits
