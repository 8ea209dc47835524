"""Learned models: ensemble network layers (``nets``), the probabilistic dynamics ensemble (``dynamics``), the
shared pool trained once per dataset, seed and architecture (``pool``), and the number format of their matrix
multiplies (``precision``: float32 or bfloat16, in training and in rollouts)."""
