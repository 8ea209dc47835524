"""``mbrl-tune``, the command line: the one boundary. It parses arguments, sets process-wide state (log
levels, signal handlers, torch threads), calls ``tuner.api`` and turns every error into one line and an exit
code. ``main`` the parser and the sweep/study commands, ``reports`` compare/confirm/calibrate/report,
``argtypes`` the parser's one-line errors and value types."""
