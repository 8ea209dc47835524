"""Figures from trial tables: loadable PNGs, several sweeps and datasets side by side, nothing drawn (None)
when nothing is scored yet."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd

from analysis import plots
from analysis.importance import importance


def _trials() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    rows = []
    for sweep, searcher in (("ax", "ax"), ("rnd", "random")):
        for dataset in ("hopper-random", "walker2d-medium"):
            for order in range(1, 7):
                # walker2d only ever tried one penalty: its box plot has an empty category
                penalty = "max_aleatoric" if dataset.startswith("walker") or order % 2 else "ll_var"
                rows.append({"sweep": sweep, "searcher": searcher, "dataset": dataset, "trial_id": f"{sweep}{order}",
                             "order": order, "status": "error" if order == 6 else "finished",
                             "score": np.nan if order == 6 else float(rng.uniform(0, 50)), "penalty": penalty,
                             "lam": float(rng.uniform(0.1, 10)) if penalty != "none" else None,
                             "rollout.horizon": int(rng.integers(1, 20))})
    return pd.DataFrame(rows)


def test_every_plot_writes_a_loadable_png(tmp_path: Path) -> None:
    t = _trials()
    params = ["penalty", "lam", "rollout.horizon"]
    history = pd.DataFrame([{"sweep": r["sweep"], "dataset": r["dataset"], "trial_id": r["trial_id"], "epoch": e,
                             "score": e * 1.0} for r in t.to_dict("records") for e in (1, 2, 3)])
    table = pd.concat([importance(g, params).assign(dataset=d) for d, g in t.groupby("dataset")])
    made = [plots.plot_best_so_far(t, tmp_path / "a.png"),
            plots.plot_score_vs_params(t, params, {"lam"}, tmp_path / "b.png"),
            plots.plot_score_by_penalty(t, tmp_path / "c.png"),
            plots.plot_parallel(t, params, {"lam"}, tmp_path / "d.png"),
            plots.plot_importance(table, tmp_path / "e.png"),
            plots.plot_learning_curves(history, tmp_path / "f.png")]
    for path in made:
        assert path is not None and matplotlib.image.imread(path).shape[0] > 100


def test_nothing_scored_draws_nothing(tmp_path: Path) -> None:
    t = _trials().assign(status="running", score=np.nan)
    params = ["penalty", "lam"]
    assert plots.plot_best_so_far(t, tmp_path / "a.png") is None
    assert plots.plot_score_vs_params(t, params, set(), tmp_path / "b.png") is None
    assert plots.plot_score_by_penalty(t, tmp_path / "c.png") is None
    assert plots.plot_parallel(t, params, set(), tmp_path / "d.png") is None
    assert not list(tmp_path.iterdir())
