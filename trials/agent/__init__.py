"""The learner: SAC with an N-critic ensemble (``sac``), S seeds as one batched learner (``seed_batch``) and
MOBILE's Bellman-inconsistency penalty (``mobile``)."""
