"""Observation and action specs: the data that decides the encoder, the head, the loss and the
storage dtype, in the Manifest and the PolicyConfig alike.

- `ObsSpec`: stacked uint8 frames (`image`, their size from the EnvConfig) or float32 state
  vectors (`vector`, of `dim` numbers, the full observation before any mask).
- `ActionSpec`: `discrete` (n actions, indices; cross-entropy, argmax) or `box` (a float vector
  within [low, high]; a squared loss on the action scaled to [-1, 1], acting with the mean,
  clipped to the bounds).

Both default to what every cfcclone dataset and checkpoint held before they existed (frames,
discrete actions), so old files load unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from cfcclone.config import Config, check

ObsKind = Literal["image", "vector"]
ActionKind = Literal["discrete", "box"]


@dataclass(frozen=True)
class ObsSpec(Config):
    """What one observation is, before stacking."""

    kind: ObsKind = "image"
    """image: (H, W) uint8 frames; vector: (dim,) float32 states."""
    dim: int = 0
    """A vector's length (the full observation; 0 for images)."""

    def __post_init__(self):
        self.check_choices()
        check(
            (self.kind == "image") == (self.dim == 0) and self.dim >= 0,
            f"expected dim > 0 for vector observations and 0 for images, got {self.kind} "
            f"with dim {self.dim}",
        )

    def shape(self, screen_size: int) -> tuple[int, ...]:
        """One observation's shape: (H, W) or (dim,)."""
        return (screen_size, screen_size) if self.kind == "image" else (self.dim,)

    @property
    def dtype(self):
        return np.uint8 if self.kind == "image" else np.float32


@dataclass(frozen=True)
class ActionSpec(Config):
    """What one action is: an index of n, or a bounded float vector."""

    kind: ActionKind = "discrete"
    """discrete: an index (int64); box: a float32 vector within [low, high]."""
    low: list[float] = field(default_factory=list)
    """A box's lower bounds, one per dimension (empty for discrete actions)."""
    high: list[float] = field(default_factory=list)
    """A box's upper bounds."""

    def __post_init__(self):
        self.check_choices()
        check(
            len(self.low) == len(self.high) and (self.kind == "box") == (len(self.low) > 0),
            f"expected as many low as high bounds, and some only for a box; got {self.kind} "
            f"with {len(self.low)} and {len(self.high)}",
        )
        check(
            all(lo <= hi for lo, hi in zip(self.low, self.high, strict=True)),
            f"expected low <= high, got {self.low} and {self.high}",
        )

    @property
    def is_box(self) -> bool:
        return self.kind == "box"

    @property
    def dim(self) -> int:
        return len(self.low)

    def center_scale(self) -> tuple[list[float], list[float]]:
        """Per dimension, the middle and half-width of the bounds (0 and 1 where unbounded):
        a box head predicts (action - center) / scale."""
        centers, scales = [], []
        for lo, hi in zip(self.low, self.high, strict=True):
            finite = math.isfinite(lo) and math.isfinite(hi) and hi > lo
            centers.append((lo + hi) / 2 if finite else 0.0)
            scales.append((hi - lo) / 2 if finite else 1.0)
        return centers, scales

    def describe(self, meanings=()) -> str:
        if self.is_box:
            return f"Box({self.dim}) in [{min(self.low):g}, {max(self.high):g}]"
        return f"Discrete({len(meanings)})" + (f" {list(meanings)}" if meanings else "")


def specs_of(observation_space, action_space, pixels: bool = False) -> tuple[ObsSpec, ActionSpec]:
    """The specs of a gymnasium env's spaces (the single env's); `pixels`: the env is watched
    through rendered frames, whatever its own observation. Other spaces are a ValueError."""
    import gymnasium as gym

    if pixels:
        obs = ObsSpec("image")
    elif isinstance(observation_space, gym.spaces.Box) and len(observation_space.shape) == 1:
        obs = ObsSpec("vector", int(observation_space.shape[0]))
    else:
        raise ValueError(
            f"expected a flat Box observation space (or --pixels), got {observation_space}"
        )
    if isinstance(action_space, gym.spaces.Discrete):
        return obs, ActionSpec()
    if isinstance(action_space, gym.spaces.Box) and len(action_space.shape) == 1:
        low, high = action_space.low.astype(float), action_space.high.astype(float)
        return obs, ActionSpec("box", low.tolist(), high.tolist())
    raise ValueError(f"expected a Discrete or flat Box action space, got {action_space}")
