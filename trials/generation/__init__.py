"""Generating D4RL-style datasets in real MuJoCo (``generate``), with behaviour policies trained by online SAC
(``online``)."""
