"""Learned models: ensemble network layers (``nets``), the probabilistic dynamics ensemble (``dynamics``) and the
shared pool trained once per dataset, seed and architecture (``pool``)."""
