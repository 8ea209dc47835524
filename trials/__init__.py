"""The trial engine: one offline model-based RL run (MOPO family) from its typed config (``config``), in
floors: ``data`` (datasets, baselines), ``generation`` (D4RL-style datasets in MuJoCo), ``models`` (networks,
dynamics ensembles, shared pools, number formats), ``agent`` (SAC, batched seeds, MOBILE), ``rollouts``
(model rollouts, penalties, replay), ``measure`` (evaluation, calibration), ``run`` (the loop, the builder,
the Tune trainable, the standalone run). ``envs`` and ``files`` serve every floor."""
