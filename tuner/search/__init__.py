"""Searchers as Ray Tune searchers, each converting the search space itself: the registry by name
(``registry``, with random search), Ax/BoTorch (``ax``), Optuna TPE (``optuna``), what they share (``base``)."""
