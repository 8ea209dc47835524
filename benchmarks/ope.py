"""Offline estimates of many policies (group ``fqe``, issue 27): the fitted Q evaluations of K policies on one
dataset batched into one ensemble of critics (``trials.measure.fqe.fqe_batch``, what ``mbrl-tune estimate``
runs over a sweep's trials) against K evaluations one after another, at DOPE's critic size (2 x 256, batch
256) on a 100k-transition hopper-random file, K = 4 and 16."""

from __future__ import annotations

from pathlib import Path

import torch

from benchmarks.report import Row
from benchmarks.sizes import Sizes
from benchmarks.timing import measure_interleaved
from trials.data.dataset import load_dataset
from trials.measure.fqe import FQEConfig, fqe, fqe_batch

POLICY_COUNTS = (4, 16)


def fqe_rows(sizes: Sizes, dataset: Path) -> list[Row]:
    data = load_dataset(dataset)
    act_dim = data.spec.act_dim
    steps = 200 if not sizes.quick else 5
    cfg = FQEConfig(steps=steps)
    rows = []
    for k in POLICY_COUNTS if not sizes.quick else POLICY_COUNTS[:1]:
        weights = [torch.randn(data.spec.obs_dim, act_dim, generator=torch.Generator().manual_seed(i)) * 0.3
                   for i in range(k)]
        policies = [lambda s, w=w: torch.tanh(s @ w) for w in weights]
        seeds = list(range(k))
        t = measure_interleaved({
            "batched": lambda ps=policies, ss=seeds: fqe_batch(ps, data, cfg, ss),
            "separate": lambda ps=policies, ss=seeds: [fqe(p, data, cfg, seed=s) for p, s in zip(ps, ss, strict=True)],
        }, repeats=3 if not sizes.quick else 1, warmup=1)
        per_update = t["batched"].median / steps / k
        rows.append(Row(
            f"fqe[K={k}]", "fqe", per_update, "s/update/policy", t["batched"].repeats,
            f"fitted Q evaluation of {k} policies on {len(data):,} transitions, {steps} critic updates each "
            f"(2x256, batch 256, Adam), the critics batched into one ensemble (trials.measure.fqe.fqe_batch); "
            f"per critic update of one policy, set-up (each policy's actions at every next state) included",
            baseline=f"{k} separate", baseline_what=f"{k} fqe() calls one after another",
            baseline_value=t["separate"].median / steps / k,
            details={"batched": t["batched"].summary(), "separate": t["separate"].summary()}))
    return rows
