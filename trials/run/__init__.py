"""One trial run: the epoch loop (``mopo``), seeds in lockstep (``seed_group``), building a trainer from its
config (``build``), the Tune config typed (``params``), the Ray Tune trainable (``trainable``) and the run behind
``mbrl-tune train`` (``standalone``)."""
