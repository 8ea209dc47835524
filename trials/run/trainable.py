"""The Ray Tune function trainable: one trial of a sweep, a comparison or a confirmation.

Ray Tune passes a config dict ``{"base": <full TrialConfig dict>, "seeds": [0, 1], <dotted key>: value,
...}``: the dotted keys (the searcher's suggestion) override the base. The trial's seeds run in lockstep
(:class:`trials.run.lockstep.LockstepTrial`: one report per epoch, ``score`` their mean and
``score_seed<S>`` each seed's, the offline estimates in the last one); this module adds what Tune needs:
the report of each epoch, a checkpoint every ``checkpoint_every`` epochs and at the end, and the
continuation from the latest checkpoint.
"""

from __future__ import annotations

import pickle
import tempfile
from pathlib import Path
from typing import Any

import torch

from trials.data.dataset import Dataset, load_dataset
from trials.host import machine
from trials.run.lockstep import LockstepTrial
from trials.run.params import TuneParams

CHECKPOINT_FILE = "trial_state.pt"


def read_checkpoint(checkpoint: Any) -> dict[Any, Any] | None:
    """The seeds' states in a Tune checkpoint, on the CPU (each trainer copies its weights and buffers to
    its own device; generator states must stay CPU byte tensors, which a load mapped to CUDA would move),
    or None when it cannot be read (a crash or a full disk cut it short): the trial then starts over,
    which loses only its own unfinished epochs."""
    try:
        with checkpoint.as_directory() as d:
            return torch.load(Path(d) / CHECKPOINT_FILE, map_location="cpu", weights_only=False)
    except (OSError, EOFError, RuntimeError, pickle.UnpicklingError) as exc:
        print(f"checkpoint {checkpoint.path} unreadable ({type(exc).__name__}); the trial starts over", flush=True)
        return None


def tune_trainable(config: dict[str, Any], dataset: Dataset | None = None, pool_dir: str | None = None) -> None:
    """Ray Tune function trainable (pass the dataset with ``tune.with_parameters`` to share it). ``pool_dir``
    (also through ``with_parameters``, so a restored experiment gets the driver's current path, not the one
    stored with the trial's config) overrides the config's pool folder."""
    import ray  # noqa: PLC0415  (Ray is only needed inside a Tune run)
    from ray import tune  # noqa: PLC0415

    params = TuneParams.from_tune(config)
    torch.set_num_threads(params.threads)
    node_id = ray.get_runtime_context().get_node_id()  # which cluster node ran the trial
    cfg = params.trial_config()
    ds = dataset if dataset is not None else load_dataset(cfg.dataset, cfg.env)
    checkpoint = tune.get_checkpoint()
    states = read_checkpoint(checkpoint) if checkpoint is not None else None
    trial = LockstepTrial(params, ds, pool_dir, states)
    where = {"node_id": node_id, **machine(trial.device)}  # which node, and what kind of machine
    final = trial.final_report()
    if final is not None:
        # Restored from the checkpoint of its last epoch, whose report a killed driver never recorded: report
        # it again, or Tune would end the trial with the epoch before as its last result.
        tune.report({**final, **where})
    for metrics in trial.epochs():
        metrics.update(where)
        if trial.done or metrics["epoch"] % trial.cfg.checkpoint_every == 0:
            with tempfile.TemporaryDirectory() as d:
                torch.save(trial.state_dict(), Path(d) / CHECKPOINT_FILE)
                tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))
        else:
            tune.report(metrics)
