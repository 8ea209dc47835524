"""The embedded default job, smaller (the tiny budget on 5,000 transitions; `make demo` itself is timed
in the closing notes): the demo's output ends with the fresh-seed comparison and its CI,
and the report it writes has the comparison."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent


def test_demo_ends_with_the_fresh_seed_comparison(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "RAY_AUTH_MODE": "token"}
    done = subprocess.run([str(BIN / "mbrl-tune"), "demo", "--out", str(tmp_path), "--trials", "3",
                           "--fresh-seeds", "2", "--preset", "tiny", "--size", "5000"],
                          capture_output=True, text=True, env=env, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "on 2 fresh seeds" in out and "difference best - baseline on fresh seeds" in out and "95% CI" in out
    assert "sample_from" not in done.stderr, "no deprecation warning of our own making"
    reports = list((tmp_path / "reports").glob("*/report.html"))
    assert len(reports) == 1
    html = reports[0].read_text()
    comparison = html.split('id="comparison"')[1].split("</section>")[0]
    assert "No comparison results" not in comparison and "fresh" in comparison
