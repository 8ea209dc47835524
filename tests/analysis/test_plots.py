"""Figures from trial tables: loadable PNGs, several sweeps and datasets side by side, nothing drawn (None)
when nothing is scored yet."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd

from analysis import plots
from analysis.importance import importance
from tuner.store.confirm_plan import BASELINE


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


def test_a_confirm_curve_with_a_run_in_progress_says_how_far_it_is(tmp_path: Path) -> None:
    """Seeds 1 and 2 finished at 1,000 updates, seed 3 still running at 400: the mean is complete up to 400,
    over the two seeds further along after it, and the legend's note says so."""
    rows = [{"arm": "best1", "budget": "confirm", "seed": seed, "updates": u, "score": float(seed * u / 100),
             "running": seed == 3} for seed in (1, 2, 3) for u in range(200, 1001 if seed < 3 else 401, 200)]
    part = pd.DataFrame(rows)
    stats, note = plots.seed_curve(part)
    assert note == "3 seeds, 1 running, at 400 updates"
    assert stats["complete"].tolist() == [True, True, False, False, False]
    assert stats.loc[stats["updates"] == 400, "mean"].item() == (4 + 8 + 12) / 3
    assert stats.loc[stats["updates"] == 600, "mean"].item() == (6 + 12) / 2
    finished_only = part[part["seed"] < 3].assign(running=False)
    assert plots.seed_curve(finished_only)[1] == "2 seeds"
    path = plots.plot_confirm_curves(pd.concat([part, finished_only.assign(arm="baseline")]), 200, "t",
                                     tmp_path / "c.png")
    assert path is not None and matplotlib.image.imread(path).shape[0] > 100


def test_many_arms_are_coloured_by_their_search_rank_and_the_transfer_is_a_scatter(tmp_path: Path) -> None:
    """Sixteen arms (``--top-k all``) get one colour scale by their rank at the search budget instead of 32
    legend entries; the transfer scatter draws each arm finished at both budgets, and nothing for fewer
    than two."""
    arms = [f"trial-{i:04d}-abcdef{i:02d}" for i in range(1, 17)]
    rows = [{"arm": arm, "budget": budget, "seed": 0, "updates": u, "score": float(i + u / 1000), "running": False}
            for i, arm in enumerate(arms) for budget, top in (("search", 200), ("confirm", 1000))
            for u in range(100, top + 1, 100)]
    curves = pd.DataFrame(rows)
    ranked = arms[::-1]  # best first at the search budget
    path = plots.plot_confirm_curves(curves, 200, "every trial", tmp_path / "c.png", ranked=ranked)
    assert path is not None and matplotlib.image.imread(path).shape[0] > 100
    colours, ranks = plots.arm_colours(arms, ranked)
    scale = matplotlib.colormaps[plots.RANK_COLOURS]
    assert ranks == 16 and colours[ranked[0]] == scale(0.0) and colours[ranked[-1]] == scale(1.0)
    assert colours[ranked[5]] == scale(5 / 15)
    few, ranks = plots.arm_colours(arms[:3], ranked)
    assert ranks == 0 and len(set(few.values())) == 3, "a few arms keep the legend's colour cycle"
    assert plots.arm_colours(arms, [])[1] == 0, "no ranking yet: the colour cycle, not a scale that means nothing"
    # A top-k confirmation of many arms: the hand-tuned arm black, arms not scored at the search budget grey,
    # the scale over the ranked ones only.
    mixed, ranks = plots.arm_colours([BASELINE, *arms[:8]], arms[:5])
    assert ranks == 5 and mixed[BASELINE] == "black" and mixed[arms[4]] == scale(1.0)
    assert all(mixed[a] == plots.UNRANKED for a in arms[5:8])
    with_baseline = pd.concat([curves, curves[curves["arm"] == arms[0]].assign(arm=BASELINE)])
    assert plots.plot_confirm_curves(with_baseline, 200, "t", tmp_path / "m.png", ranked=arms[:5]) is not None
    points = pd.DataFrame({"arm": ["baseline", *arms[:4]], "search": [1.0, 2.0, 3.0, 4.0, 5.0],
                           "confirm": [2.0, 1.0, 4.0, 3.0, 5.0]})
    scatter = plots.plot_transfer(points, (200, 1000), "tau", tmp_path / "t.png")
    assert scatter is not None and matplotlib.image.imread(scatter).shape[0] > 100
    assert plots.plot_transfer(points.iloc[:1], (200, 1000), "tau", tmp_path / "none.png") is None
    assert not (tmp_path / "none.png").exists()
