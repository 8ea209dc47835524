"""The typed trial config: everything one offline MBRL run needs, validated at the boundary.

A trial *is* its config: it round-trips to YAML/JSON, and ``--set key=value`` overrides use dotted keys
(``rollout.horizon=5``). An invalid value or unknown key raises :class:`ConfigError` with one line naming
the field, the value and what is allowed. Defaults are MOPO's published settings at full scale
(tianheyu927/mopo ``examples/config/d4rl/base.py``); tests and demos scale them down through the config.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from trials.files import atomic_write_text, framed_yaml, read_yaml_mapping

PenaltyName = Literal["none", "max_aleatoric", "max_pairwise_diff", "ensemble_std", "ensemble_var",
                      "ll_var", "loo_kl", "mobile"]
#: Where rollouts come from: the learned ensemble, or the real simulator (the edge-of-reach test).
DynamicsKind = Literal["learned", "true"]
#: Floating-point formats an ensemble's matrix multiplies can run in (pool training, rollouts).
Precision = Literal["float32", "bfloat16"]
#: Penalties that compare members, so need at least two of them.
MULTI_MEMBER_PENALTIES = ("max_pairwise_diff", "ensemble_std", "ensemble_var", "ll_var", "loo_kl")
#: Offline estimates of a trial's final policy (``trials.measure.offline``): fitted Q evaluation on the dataset,
#: and the return in an independent dynamics pool.
EstimatorName = Literal["fqe", "model"]
ESTIMATORS: tuple[EstimatorName, ...] = ("fqe", "model")
#: Penalties computed at SAC update time from the critics and the model (``trials.agent.mobile``); the rollout
#: stores unpenalised rewards for them.
UPDATE_TIME_PENALTIES = ("mobile",)



class SACConfig(BaseModel):
    """SAC hyperparameters (defaults: the SAC paper's, as in MOPO and stable-baselines3)."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, frozen=True)

    hidden: int = Field(256, ge=1)
    """Units in each hidden layer of the actor and the critics."""
    layers: int = Field(2, ge=1)
    """Hidden layers in the actor and in each critic."""
    actor_lr: float = Field(3e-4, gt=0)
    """Adam learning rate of the actor."""
    critic_lr: float = Field(3e-4, gt=0)
    """Adam learning rate of the critics."""
    alpha_lr: float = Field(3e-4, gt=0)
    """Adam learning rate of the log entropy temperature."""
    gamma: float = Field(0.99, gt=0, le=1)
    """Discount factor."""
    tau: float = Field(0.005, gt=0, le=1)
    """Polyak rate of the target critics."""
    batch_size: int = Field(256, ge=1)
    """Transitions per gradient step."""
    init_alpha: float = Field(1.0, gt=0)
    """Initial entropy temperature."""
    auto_alpha: bool = True
    """Tune the temperature toward ``target_entropy`` (else keep ``init_alpha``)."""
    target_entropy: float | None = None
    """Target policy entropy; None means ``-act_dim`` (MOPO's official code uses -3 for every env)."""
    num_critics: int = Field(2, ge=2, le=100)
    """Q-functions in the critic ensemble (N); the TD target and the actor's objective use the minimum
    over all of them (SAC: 2; EDAC and RAVL: 10-50)."""
    eta: float = Field(0.0, ge=0)
    """Weight of EDAC's gradient-diversity term in the critic loss (0: off; RAVL's default is 1)."""
    deterministic_backup: bool = False
    """Leave the entropy term ``-alpha log pi(a'|s')`` out of the TD target (OfflineRL-Kit's MOBILE runs
    with it on)."""
    target_floor: float | None = None
    """Clip TD targets from below at this value (None: no clip; OfflineRL-Kit's MOBILE clips at 0)."""
    actor_lr_schedule: Literal["constant", "cosine"] = "constant"
    """Actor learning rate over a run: constant, or cosine-decayed from ``actor_lr`` to 0 over the run's
    epochs (OfflineRL-Kit's ``CosineAnnealingLR(actor_optim, epochs)``, stepped once per epoch)."""


class ConfigError(ValueError):
    """An invalid config; the message is one line."""


#: Devices a trial config may name: ``cpu``, ``cuda``, ``cuda:N``, ``mps``.
DEVICE_PATTERN = r"^(cpu|cuda(:\d+)?|mps)$"


def torch_device(text: str) -> Any:
    """``text`` as a ``torch.device`` that exists on this machine; :class:`ConfigError` (one line) for one
    that does not (CUDA without a GPU or a CUDA build of torch, an index past the last GPU, MPS off a Mac)."""
    import torch  # noqa: PLC0415  (reading a config needs no torch)

    if not re.match(DEVICE_PATTERN, text):
        raise ConfigError(f"device {text!r}: not a device; allowed: cpu, cuda, cuda:N, mps")
    device = torch.device(text)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            built = "without CUDA" if torch.version.cuda is None else f"with CUDA {torch.version.cuda}, no GPU seen"
            raise ConfigError(f"device {text!r}: no CUDA device on this machine (torch {torch.__version__} {built}); "
                              f"use device=cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"device {text!r}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                              f"cuda:0..cuda:{torch.cuda.device_count() - 1}")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {text!r}: MPS is not available on this machine; use device=cpu")
    return device


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, frozen=True)


class DynamicsConfig(_Strict):
    """Architecture and training of the dynamics pool (part of the pool's cache key, ``kind`` excepted)."""

    kind: DynamicsKind = "learned"
    """``learned``: rollouts step the trial's members of the shared pool. ``true``: they step the real
    MuJoCo simulator from the dataset states' stored ``infos/qpos``/``infos/qvel`` (no pool is trained;
    the edge-of-reach paper's test: penalties that need an ensemble are undefined there, so only
    ``penalty: none``, with or without a critic ensemble, is allowed). YAML reads a bare ``true`` as a
    boolean, so ``kind: true`` and ``--set dynamics.kind=true`` are taken as ``"true"``."""

    @field_validator("kind", mode="before")
    @classmethod
    def _yaml_true(cls, value: Any) -> Any:
        return "true" if value is True else value

    pool_size: int = Field(7, ge=1, le=64)
    """Members trained in the shared pool (N_max); a trial uses ``num_models`` of them."""
    hidden: int = Field(200, ge=1)
    """Units per hidden layer of each member."""
    layers: int = Field(4, ge=1)
    """Hidden layers of each member."""
    lr: float = Field(1e-3, gt=0)
    """Adam learning rate."""
    weight_decay: tuple[float, ...] = (2.5e-5, 5e-5, 7.5e-5, 7.5e-5, 1e-4)
    """L2 weight decay per layer (hidden layers then output; the last value repeats if too short)."""
    batch_size: int = Field(256, ge=1)
    """Transitions per member per gradient step."""
    holdout_ratio: float = Field(0.2, gt=0, lt=1)
    """Fraction of the data held out for validation and early stopping."""
    max_holdout: int = Field(1000, ge=1)
    """Cap on the holdout size."""
    patience: int = Field(5, ge=1)
    """Epochs without a >1% holdout improvement of any member before training stops."""
    max_epochs: int | None = Field(None, ge=1)
    """Hard cap on training epochs (None: until early stopping)."""
    bootstrap: bool = True
    """Each member trains on its own bootstrap resample of the training rows (drawn once, reshuffled every
    epoch), as MOPO's ``bnn.py`` and OfflineRL-Kit's ``EnsembleDynamics.train`` do; without it every member
    sees the same rows (only initialisation and order differ), so the members agree more and every
    heuristic that compares members reads lower."""
    precision: Precision = "float32"
    """Format of the matrix multiplies while the pool trains (``trials.models.precision``): ``bfloat16``
    runs each member's forward and backward products in bfloat16 under autocast, with float32 master
    weights, loss, optimiser state, and holdout errors (so elites and early stopping do not move on a
    number-format artefact). Where the CPU lacks native bfloat16 it computes the forward's bfloat16 numbers
    in float32 arithmetic at float32's speed. Part of the pool's key (a float32 pool keeps the key it had
    before this field existed)."""
    normalize_targets: bool = False
    """Standardise the targets ``[delta_s, r]`` too (inputs always are). False, as in both references: the
    Gaussian NLL, the learned log-variance bounds and the holdout MSE that ranks members live in the data's
    own units, so ``max_aleatoric`` and the published lambdas mean what they meant there. True weights every
    output dimension equally in the loss (its bounds then live in standardised units)."""


class RolloutConfig(_Strict):
    """Branched model rollouts (MBPO/MOPO)."""

    horizon: int = Field(5, ge=1, le=1000)
    """Model steps per rollout (h)."""
    batch_size: int = Field(50_000, ge=1)
    """Start states per rollout round, drawn uniformly from the dataset."""
    freq: int = Field(1000, ge=1)
    """SAC updates between rollout rounds."""
    retain_epochs: int = Field(5, ge=1)
    """Epochs a model transition is kept in the model buffer."""
    precision: Precision = "float32"
    """Format of the ensemble's matrix multiplies during rollouts (``trials.models.precision``; normalisation,
    sampling, penalties and the stored transitions stay float32). ``bfloat16`` runs the rollout ~2.4x faster
    on CPUs with AVX512-BF16 or AMX and on GPUs (autocast); other CPUs compute the same bfloat16 numbers in
    float32 arithmetic at float32's speed (their autocast fallback is ~17x slower). On the 100k
    hopper-medium pool its predictions differ from float32 by ~3% of the model's own error, max_aleatoric
    and ensemble_std by <1%, ll_var and loo_kl by 8-16% (``python -m benchmarks.precision``)."""


class EstimateConfig(_Strict):
    """Offline estimates of the trial's final policy, computed once after its last epoch and reported beside
    the simulator score (``score_fqe``, ``score_model``): what a sweep with ``--objective fqe|model`` optimises.
    They measure the trained policy and change nothing it learns."""

    kinds: tuple[EstimatorName, ...] = ()
    """Estimates to compute: ``fqe`` (fitted Q evaluation on the dataset, ``trials.measure.fqe``) and/or
    ``model`` (the discounted return in another seed's dynamics pool, ``trials.measure.model_value``)."""
    fqe_steps: int = Field(20_000, ge=1)
    """Critic updates of the FQE (DOPE's reference runs up to 1M)."""
    gamma: float = Field(0.99, gt=0, lt=1)
    """Discount of both estimates (their values are discounted returns)."""
    judge_seed: int | None = None
    """Seed of the independent pool ``model`` rolls out in; None: one above the trial's largest seed (the
    first fresh seed of its comparison). It must differ from every seed the trial runs."""

    @field_validator("kinds")
    @classmethod
    def _once_each(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(dict.fromkeys(value))


class TrialConfig(_Strict):
    """One offline model-based RL run."""

    dataset: str
    """Path of the D4RL-schema HDF5 dataset, ``d4rl:<env>-<level>-v<N>`` (a D4RL file present locally) or
    ``minari:<id>``."""
    env: str | None = None
    """Env of a dataset without metadata (D4RL's own files); None reads it from the file."""
    penalty: PenaltyName = "max_aleatoric"
    """Uncertainty heuristic u(s, a) subtracted from model rewards (formulas in docs/design.md)."""
    lam: float = Field(1.0, ge=0)
    """Penalty weight lambda: model reward is r - lam * u(s, a)."""
    mobile_samples: int = Field(10, ge=1, le=1000)
    """Next states sampled per elite for MOBILE's penalty (``penalty: mobile``; OfflineRL-Kit: 10)."""
    num_models: int = Field(7, ge=1)
    """Ensemble members of the pool this trial uses (N), chosen by ``trials.models.pool.select_members``."""
    num_elites: int = Field(5, ge=1)
    """Members next states are sampled from (the best by holdout loss among the N)."""
    real_ratio: float = Field(0.05, ge=0, le=1)
    """Fraction of each SAC batch drawn from the real dataset; the rest from model rollouts."""
    rollout: RolloutConfig = RolloutConfig()
    """Model rollout settings."""
    dynamics: DynamicsConfig = DynamicsConfig()
    """Dynamics pool architecture and training."""
    sac: SACConfig = SACConfig()
    """SAC settings of the offline agent."""
    epochs: int = Field(1000, ge=1)
    """Training epochs."""
    steps_per_epoch: int = Field(1000, ge=1)
    """SAC updates per epoch."""
    eval_every: int = Field(1, ge=1)
    """Epochs between evaluations in the real environment (the last epoch is always evaluated)."""
    eval_episodes: int = Field(10, ge=1)
    """Deterministic-policy episodes per evaluation."""
    score_window: int = Field(1, ge=1)
    """Evaluations averaged into the trial's score, its objective in sweeps: 1 is the latest evaluation
    (MOPO's protocol); 3-5 damp evaluation noise (on 100k hopper-medium the hand-tuned policy's score flips
    between ~10 and ~2 from one evaluation to the next)."""
    checkpoint_every: int = Field(1, ge=1)
    """Epochs between checkpoints reported to Ray Tune."""
    seed: int = 0
    """Seed of everything random in the trial, pool training included."""
    device: str = "cpu"
    """Torch device (``cpu``, ``cuda``, ``cuda:1``, ``mps``); checked against this machine when a run
    starts (:func:`torch_device`), not when a config is read (a GPU sweep is read on any machine)."""
    pool_dir: str | None = None
    """Folder of shared dynamics pools; None means a ``pools/`` folder beside the dataset."""
    estimate: EstimateConfig = EstimateConfig()
    """Offline estimates of the final policy (none by default)."""

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if not re.match(DEVICE_PATTERN, value):
            raise ValueError("not a device; allowed: cpu, cuda, cuda:N, mps")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> TrialConfig:
        if self.num_models > self.dynamics.pool_size:
            raise ValueError(f"num_models={self.num_models} exceeds dynamics.pool_size="
                             f"{self.dynamics.pool_size}")
        if self.num_elites > self.num_models:
            raise ValueError(f"num_elites={self.num_elites} exceeds num_models={self.num_models}")
        if self.dynamics.kind == "true" and self.penalty != "none":
            raise ValueError(f"penalty '{self.penalty}' needs a learned ensemble, undefined with dynamics.kind="
                             f"true; allowed there: none (with sac.num_critics and sac.eta for RAVL)")
        if self.dynamics.kind == "learned" and self.penalty in MULTI_MEMBER_PENALTIES and self.num_models < 2:
            raise ValueError(f"penalty '{self.penalty}' needs num_models >= 2, got {self.num_models}")
        if self.estimate.judge_seed is not None and self.estimate.judge_seed == self.seed \
                and "model" in self.estimate.kinds:
            raise ValueError(f"estimate.judge_seed={self.seed} is the trial's own seed: the model estimate needs a "
                             f"pool the policy was not trained against")
        if self.dynamics.kind == "learned" and self.penalty == "mobile" and self.num_elites < 2:
            raise ValueError(f"penalty 'mobile' (a std over elites) needs num_elites >= 2, got {self.num_elites}")
        return self

    # ------------------------------------------------------------ construction
    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> TrialConfig:
        """Validate ``data``; errors become one-line ConfigErrors."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(f"{source}: {_one_line(exc)}") from None

    @classmethod
    def load(cls, path: str | Path, overrides: dict[str, Any] | None = None) -> TrialConfig:
        """Load YAML or JSON (a file with a top-level ``config:`` key, as ``export`` writes, also works),
        then apply dotted overrides."""
        path = Path(path)
        data = read_yaml_mapping(path, ConfigError, "config fields")
        if "config" in data and isinstance(data["config"], dict):
            data = data["config"]
        return cls.from_dict(apply_overrides(data, overrides or {}), str(path))

    def with_overrides(self, overrides: dict[str, Any]) -> TrialConfig:
        return TrialConfig.from_dict(apply_overrides(self.to_dict(), overrides), "overrides")

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def save(self, path: str | Path) -> Path:
        """Write YAML framed as a "trial config" (``trials.files.framed_yaml``: a copy cut short is refused when
        read back) or JSON for a ``.json`` name, atomically."""
        path = Path(path)
        text = (json.dumps(self.to_dict(), indent=2) if path.suffix == ".json"
                else framed_yaml(self.to_dict(), "trial config"))
        atomic_write_text(path, text)
        return path

    @property
    def resolved_pool_dir(self) -> Path:
        if self.pool_dir is not None:
            return Path(self.pool_dir)
        from trials.data.dataset import dataset_path  # noqa: PLC0415  (dataset imports the env registry)

        return Path(dataset_path(self.dataset)).resolve().parent / "pools"


def _one_line(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(x) for x in err["loc"])
    if not loc:  # a cross-field rule
        return err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        return f"unknown field '{loc}'"
    if err["type"] == "missing":
        return f"field '{loc}': required"
    value = err.get("input")
    shown = "" if isinstance(value, dict) else f" value {value!r}:"
    return f"field '{loc}':{shown} {err['msg'].removeprefix('Value error, ')}"


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["rollout.horizon=5", "penalty=ll_var"]`` -> dotted dict, values parsed as YAML scalars."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. rollout.horizon=5")
        try:
            out[key.strip()] = yaml.safe_load(raw)
        except yaml.YAMLError:
            out[key.strip()] = raw
    return out


def apply_overrides(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``data`` with each dotted key set (intermediate mappings created as needed)."""
    result = json.loads(json.dumps(data))
    for key, value in overrides.items():
        node = result
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {key}: '{part}' is not a group of fields")
            node = child
        node[parts[-1]] = value
    return result


def has_key(data: dict[str, Any], dotted: str) -> bool:
    """Whether the nested mapping ``data`` holds the dotted key (``sac.actor_lr``)."""
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True
