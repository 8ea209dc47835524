"""What dataset generation is asked for, without running it: the levels it can make and the settings of
its behaviour policies (:class:`GenerateConfig`). Light to import (no torch, no MuJoCo), so the command
line can offer and check them before anything heavy loads; ``generate`` does the work."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from trials.config import SACConfig

#: The D4RL levels a dataset can be generated at (``trials.generation.generate.LEVELS`` makes each).
LEVEL_NAMES = ("random", "medium", "expert", "medium-replay", "medium-expert")


class GenerateConfig(BaseModel):
    """How a behaviour policy is trained; part of the policy cache key."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, frozen=True)

    sac: SACConfig = SACConfig()
    """SAC settings of the behaviour runs."""
    medium_fraction: float = Field(1 / 3, gt=0, le=1)
    """The medium run stops when its evaluation return first reaches this fraction of the expert score."""
    medium_max_steps: int = Field(300_000, ge=1)
    """Env-step budget of the medium run if the target is never reached."""
    expert_steps: int = Field(1_000_000, ge=1)
    """Env-step budget of the expert run."""
    learning_starts: int = Field(5000, ge=0)
    """Uniformly random steps before SAC updates begin."""
    eval_every: int = Field(5000, ge=1)
    """Env steps between the evaluations that decide when medium stops."""
    eval_episodes: int = Field(5, ge=1)
    """Episodes per evaluation."""
    device: str = "cpu"
    """Torch device of the behaviour runs."""
