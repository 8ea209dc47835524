"""Tables, figures and the report, from what the store reads (``tuner.store``) and the trial engine measured:
results, comparison, confirmation, calibration, importance, online budget, plots, report."""
