"""Stacking the last observations of N envs, as every env of cfcclone does (a leaf module:
ALE's envs in `cfcclone.envs` and gymnasium's in `cfcclone.gym_env` share it)."""

from __future__ import annotations

import numpy as np


class FrameStacker:
    """The last `stack` observations of N envs, (N, stack, *shape), padded by the first one:
    frames (H, W) uint8, or state vectors (d,) float32.

    `rows` are env ids (an int array); `frames` holds one observation per env of `rows`."""

    def __init__(self, num_envs: int, stack: int, size: int | tuple, dtype=np.uint8):
        shape = (size, size) if isinstance(size, int) else tuple(size)
        self.obs = np.zeros((num_envs, stack, *shape), dtype=dtype)

    def start(self, rows: np.ndarray, frames: np.ndarray) -> None:
        """Begin new episodes in `rows`, frames (len(rows), *shape): every slot gets it."""
        self.obs[rows] = frames[:, None]

    def push(self, rows: np.ndarray, frames: np.ndarray) -> None:
        """Append frames (len(rows), *shape) to `rows`, dropping their oldest."""
        self.obs[rows, :-1] = self.obs[rows, 1:]
        self.obs[rows, -1] = frames
