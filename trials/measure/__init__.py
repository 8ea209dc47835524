"""Measuring: a policy in the real environment (``evaluation``) and each penalty against the true model
error (``calibration``)."""
