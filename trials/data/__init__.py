"""Offline datasets in D4RL's schema (``dataset``) and the published hand-tuned settings (``baselines``, from
``hand_tuned_baselines.yaml``)."""
