"""Running on Ray: a sweep (``sweep``, its pool phase ``pools``, ``trackers``), the re-runs of its configurations
(``compare``, ``confirm``), the whole study (``study``) and the result folders written from stored runs
(``outputs``: calibration, report)."""
