"""Synthetic data: branched model rollouts (``rollout``), the uncertainty penalties (``penalties``), replay
buffers (``replay``) and the true simulator as a model (``true_dynamics``)."""
