"""How many online episodes does choosing among a sweep's best configurations take? The UCB-bandit protocol
of Unifloral (Jackson et al. 2025): each candidate configuration is an arm, one pull is one episode of its
final policy, and after ``n`` pulls the arm with the highest mean so far is chosen; the curve is the true
score of the chosen arm (its mean over every recorded episode) against the episodes spent, averaged over
repeats in which ``k`` candidates are drawn from the pool and the episodes are resampled.

The episodes are the ones ``compare`` and ``confirm`` runs recorded at their last ``score_window``
evaluations (``episode_returns_seed<S>`` in each report), D4RL-normalised.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from trials.envs import EnvSpec
from tuner.store.records import TrialRecord

#: Unifloral's exploration weight.
ALPHA = 2.0
#: Pulls (episodes) the curve goes to.
MAX_PULLS = 200
#: Repeats (candidate subsets and episode resamples) the curve is averaged over.
REPEATS = 500


@dataclass(frozen=True)
class BanditCurve:
    curve: pd.DataFrame
    """``pulls``, ``expected`` (mean true score of the chosen arm), ``low``/``high`` (2.5/97.5 percentiles
    over repeats)."""
    true_scores: dict[str, float]
    """Each candidate's true score: the mean of all its recorded episodes."""
    k: int
    """Candidates per repeat."""


def ucb_curve(episodes: dict[str, np.ndarray], k: int | None = None, alpha: float = ALPHA,
              max_pulls: int = MAX_PULLS, repeats: int = REPEATS, seed: int = 0) -> BanditCurve:
    """The expected true score of the UCB bandit's choice after 1..``max_pulls`` episodes (see the module
    docstring). ``episodes``: arm -> its recorded episode scores (at least one each)."""
    names = [name for name, eps in episodes.items() if len(eps)]
    if not names:
        raise ValueError("no candidate has a recorded episode")
    k = len(names) if k is None else min(k, len(names))
    true = {name: float(np.mean(episodes[name])) for name in names}
    rng = np.random.default_rng(seed)
    chosen_true = np.empty((repeats, max_pulls))
    for r in range(repeats):
        arms = [names[i] for i in rng.choice(len(names), size=k, replace=False)]
        pools = [np.asarray(episodes[a], dtype=float) for a in arms]
        sums, counts = np.zeros(k), np.zeros(k)
        for t in range(max_pulls):
            if t < k:  # every arm once first
                arm = t
            else:
                ucb = sums / counts + alpha * np.sqrt(math.log(t) / counts)
                arm = int(np.argmax(ucb))
            sums[arm] += rng.choice(pools[arm])
            counts[arm] += 1
            means = np.where(counts > 0, sums / np.maximum(counts, 1), -np.inf)
            chosen_true[r, t] = true[arms[int(np.argmax(means))]]
    curve = pd.DataFrame({"pulls": np.arange(1, max_pulls + 1), "expected": chosen_true.mean(0),
                          "low": np.percentile(chosen_true, 2.5, axis=0),
                          "high": np.percentile(chosen_true, 97.5, axis=0)})
    return BanditCurve(curve, true, k)


def final_episode_scores(record: TrialRecord, seeds: list[int], env: EnvSpec) -> list[float]:
    """A run's final policies' episodes, the bandit's pulls: every episode of the last ``score_window``
    evaluations of each of ``seeds`` (the ones its score averages), D4RL-normalised where ``env`` has
    reference scores (raw returns otherwise, as the trial's own score). Runs made before episodes were
    recorded have none."""
    window = record.trial_config().score_window
    scale = env.normalized_score if env.random_score is not None else (lambda r: r)
    out: list[float] = []
    for seed in seeds:
        key = f"episode_returns_seed{seed}"
        for returns in [h[key] for h in record.history if key in h][-window:]:
            out += [float(scale(r)) for r in returns]
    return out
