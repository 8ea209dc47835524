"""Worker process of ``benchmarks.peer``: OfflineRL-Kit's own MOPO epoch, its modules unmodified, from a
local checkout the user provides (nothing of it is copied into this repository).

It builds the objects the way OfflineRL-Kit's ``run_example/run_mopo.py`` does (same classes, same
default sizes: SAC 256x2, dynamics 7 members / 5 elites 200x4, rollout every 1,000 steps of 50,000 states,
fake buffer of 5 rollouts, real ratio 0.05, batch 256), trains the dynamics for ``--dynamics-epochs``
epochs with its ``EnsembleDynamics.train``, then runs ``MBPolicyTrainer.train`` itself for ``--epochs``
epochs. The epoch boundaries are read from the trainer's own per-epoch ``Logger.dumpkvs`` (a timestamp
writer is added to the logger's handlers); evaluation is set to zero episodes, as our side pushes its
evaluation past the measured epochs. Everything runs on one torch thread::

    python -m benchmarks.okit_epoch --okit DIR --dataset data.hdf5 --epochs 3 --horizon 5 --out r.json
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import random
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trials.config import atomic_write_text
from trials.data.dataset import Dataset, load_dataset


class _EvalEnv:
    """What ``MBPolicyTrainer`` asks of its evaluation env when it runs zero episodes: ``reset`` (once per
    epoch) and D4RL's ``get_normalized_score``. Backed by the dataset's real MuJoCo env."""

    def __init__(self, ds: Dataset) -> None:
        self.spec = ds.spec
        self.env = self.spec.make()

    def reset(self) -> np.ndarray:
        obs, _ = self.env.reset(seed=0)
        return obs

    def get_normalized_score(self, ret: float) -> float:
        return float(self.spec.normalized_score(ret)) / 100.0


def qlearning_arrays(ds: Dataset) -> dict[str, np.ndarray]:
    """The dict OfflineRL-Kit's ``qlearning_dataset`` returns (its ``ReplayBuffer.load_dataset`` input)."""
    return {"observations": ds.observations, "actions": ds.actions, "next_observations": ds.next_observations,
            "rewards": ds.rewards, "terminals": ds.terminals.astype(np.float32)}


def run(okit: Path, ds: Dataset, epochs: int, horizon: int, penalty: float, dynamics_epochs: int,
        seed: int, log_dir: Path) -> dict[str, Any]:
    sys.path.insert(0, str(okit))
    from offlinerlkit.buffer import ReplayBuffer  # noqa: PLC0415
    from offlinerlkit.dynamics import EnsembleDynamics  # noqa: PLC0415
    from offlinerlkit.modules import ActorProb, Critic, EnsembleDynamicsModel, TanhDiagGaussian  # noqa: PLC0415
    from offlinerlkit.nets import MLP  # noqa: PLC0415
    from offlinerlkit.policy import MOPOPolicy  # noqa: PLC0415
    from offlinerlkit.policy_trainer import MBPolicyTrainer  # noqa: PLC0415
    from offlinerlkit.utils.logger import KVWriter, Logger  # noqa: PLC0415
    from offlinerlkit.utils.scaler import StandardScaler  # noqa: PLC0415
    from offlinerlkit.utils.termination_fns import get_termination_fn  # noqa: PLC0415

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    obs_dim, act_dim = ds.observations.shape[1], ds.actions.shape[1]
    rollout_batch, retain, real_ratio = 50_000, 5, 0.05

    actor_backbone = MLP(input_dim=obs_dim, hidden_dims=[256, 256])
    dist = TanhDiagGaussian(latent_dim=actor_backbone.output_dim, output_dim=act_dim, unbounded=True,
                            conditioned_sigma=True, max_mu=1.0)
    actor = ActorProb(actor_backbone, dist, "cpu")
    critic1 = Critic(MLP(input_dim=obs_dim + act_dim, hidden_dims=[256, 256]), "cpu")
    critic2 = Critic(MLP(input_dim=obs_dim + act_dim, hidden_dims=[256, 256]), "cpu")
    actor_optim = torch.optim.Adam(actor.parameters(), lr=1e-4)
    critic1_optim = torch.optim.Adam(critic1.parameters(), lr=3e-4)
    critic2_optim = torch.optim.Adam(critic2.parameters(), lr=3e-4)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(actor_optim, 3000)
    log_alpha = torch.zeros(1, requires_grad=True)
    alpha = (-float(act_dim), log_alpha, torch.optim.Adam([log_alpha], lr=1e-4))

    model = EnsembleDynamicsModel(obs_dim=obs_dim, action_dim=act_dim, hidden_dims=[200, 200, 200, 200],
                                  num_ensemble=7, num_elites=5,
                                  weight_decays=[2.5e-5, 5e-5, 7.5e-5, 7.5e-5, 1e-4], device="cpu")
    dynamics = EnsembleDynamics(model, torch.optim.Adam(model.parameters(), lr=1e-3), StandardScaler(),
                                get_termination_fn(task=f"{ds.meta.env}-{ds.meta.level}"), penalty_coef=penalty)
    policy = MOPOPolicy(dynamics, actor, critic1, critic2, actor_optim, critic1_optim, critic2_optim,
                        tau=0.005, gamma=0.99, alpha=alpha)

    data = qlearning_arrays(ds)
    real_buffer = ReplayBuffer(buffer_size=len(ds), obs_shape=(obs_dim,), obs_dtype=np.float32,
                               action_dim=act_dim, action_dtype=np.float32, device="cpu")
    real_buffer.load_dataset(data)
    fake_buffer = ReplayBuffer(buffer_size=rollout_batch * horizon * retain, obs_shape=(obs_dim,),
                               obs_dtype=np.float32, action_dim=act_dim, action_dtype=np.float32, device="cpu")
    log_dir.mkdir(parents=True)
    logger = Logger(str(log_dir), {"dynamics_training_progress": "csv"})

    t0 = time.perf_counter()
    dynamics.train(real_buffer.sample_all(), logger, max_epochs=dynamics_epochs)
    dynamics_s = time.perf_counter() - t0

    stamps: list[float] = []

    class Stamp(KVWriter):  # the trainer dumps its logs once per epoch, after the epoch's updates
        handler_name = "stamp"

        def writekvs(self, kvs: dict) -> None:
            stamps.append(time.perf_counter())

        def close(self) -> None:
            pass

    logger._output_handlers.append(Stamp())
    trainer = MBPolicyTrainer(policy=policy, eval_env=_EvalEnv(ds), real_buffer=real_buffer,
                              fake_buffer=fake_buffer, logger=logger, rollout_setting=(1000, rollout_batch, horizon),
                              epoch=epochs, step_per_epoch=1000, batch_size=256, real_ratio=real_ratio,
                              eval_episodes=0, lr_scheduler=scheduler)
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), np.errstate(all="ignore"):
        trainer.train()
    edges = [start, *stamps]
    return {"epochs": [{"wall_s": b - a} for a, b in zip(edges, edges[1:], strict=False)],
            "dynamics_s": dynamics_s, "dynamics_epochs": dynamics_epochs,
            "maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "threads": torch.get_num_threads()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--okit", required=True, help="a checkout of yihaosun1124/OfflineRL-Kit")
    p.add_argument("--dataset", required=True)
    p.add_argument("--epochs", type=int, required=True)
    p.add_argument("--horizon", type=int, default=5)
    p.add_argument("--penalty", type=float, default=0.5)
    p.add_argument("--dynamics-epochs", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="result JSON path (written atomically)")
    args = p.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        result = run(Path(args.okit), load_dataset(args.dataset), args.epochs, args.horizon, args.penalty,
                     args.dynamics_epochs, args.seed, Path(tmp) / "log")
    atomic_write_text(Path(args.out), json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
