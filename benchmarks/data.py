"""The benchmark's datasets: hopper-random files made with ``mbrl-tune datasets generate`` when missing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

DEFAULT_DATA_DIR = Path("/tmp/bench")


def hopper_random(data_dir: Path, size: int) -> Path:
    """``<data_dir>/hopper-random-<size>.hdf5`` (``100k`` style for multiples of 1000), generated if absent
    (random actions in real MuJoCo: about 12 s per 100,000 transitions here)."""
    label = f"{size // 1000}k" if size % 1000 == 0 else str(size)
    path = data_dir / f"hopper-random-{label}.hdf5"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        print(f"generating {path} ...", flush=True)
        subprocess.run([sys.executable, "-m", "tuner.cli.main", "datasets", "generate", "--env", "hopper", "--level",
                        "random", "--size", str(size), "--out", str(path), "--quiet"], check=True,
                       stdout=subprocess.DEVNULL)
    return path
