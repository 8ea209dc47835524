"""Rebuild an evidence dataset from its stored actions, bit for bit, on any CPU (trials.generation.generate.replay).

The study's hopper-medium-100k was made by generator version 1, whose float32 policy forward differs
between CPUs: it regenerates on the AMD EPYC hosts with AVX512-BF16 this project ran on, not on a Xeon with
AMX. Its actions (docs/results/behaviour/hopper-medium-100k-v1-actions.npz, 1.2 MB) make it anywhere:

    .venv/bin/python docs/results/rebuild_dataset.py docs/results/behaviour/hopper-medium-100k-v1-actions.npz \\
        data/evidence/hopper-medium-100k.hdf5

Saving such a file (once, from a dataset that exists):
``python docs/results/rebuild_dataset.py --save FILE.hdf5 OUT.npz``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from trials.data.dataset import load_dataset, save_hdf5
from trials.envs import get_env_spec
from trials.generation.generate import replay


def main(argv: list[str]) -> int:
    if argv[:1] == ["--save"]:
        ds = load_dataset(argv[1])
        m = ds.meta
        np.savez_compressed(argv[2], actions=ds.actions, env=m.env, level=m.level, seed=m.seed,
                            generator_version=m.generator_version, content_hash=ds.content_hash())
        print(f"wrote {argv[2]}: {len(ds)} actions of {m.env}-{m.level} seed {m.seed} ({ds.content_hash()})")
        return 0
    with np.load(argv[0]) as f:
        env, level, seed, version, digest = (str(f[k]) for k in ("env", "level", "seed", "generator_version",
                                                                 "content_hash"))
        actions = f["actions"]
    ds = replay(get_env_spec(env), level, int(seed), actions, version, progress=False)
    if ds.content_hash() != digest:
        print(f"rebuilt {ds.content_hash()}, expected {digest}: not the stored dataset", file=sys.stderr)
        return 1
    save_hdf5(ds, Path(argv[1]))
    print(f"wrote {argv[1]}: {env}-{level} seed {seed}, content hash {digest} (as stored)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
