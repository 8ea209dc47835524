"""Synthetic data: branched model rollouts (``rollout``), the uncertainty penalties (``penalties``), replay
buffers (``replay``), the rollout's number format (``precision``) and the true simulator as a model
(``true_dynamics``)."""
