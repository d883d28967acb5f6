"""A Breakout expert made to be cloned: a dead-band tracker of where the ball will land.

Every input is something the 4 stacked frames show: the ball's position, its velocity over
the last step, and the paddle's position (RAM gives them exactly; the addresses and the
calibration are those of `cfcclone.experts.scripted`). It moves the paddle towards the ball's
predicted landing x, with the walls folded, and waits when the paddle is within a wide
dead-band. So the action is a step function of visible geometry, held for several steps at a
time. The planner in `scripted` scores more by timing single presses against the paddle's
momentum. That momentum lives in a RAM knob the frames do not show, and a clone of the
planner learned to press nothing.
"""

from __future__ import annotations

import numpy as np

from cfcclone.experts.scripted import fold

NOOP, RIGHT, LEFT = 0, 2, 3
CONTACT_Y = 177.0  # ram[101] where the ball meets the paddle
TOP_Y = 94.0  # a rising ball is taken to turn here, below the lowest bricks
WALL_LO, WALL_HI = 8.0, 152.0  # the ball's centre x reflects here


class BreakoutTracker:
    """Batched, deterministic: act(obs (N,4,84,84), info{"ram": (N,128)}, start (N,)) -> (N,)."""

    game = "breakout"

    def __init__(self, num_envs: int = 1, dead_band: float = 10.0):
        self.num_envs = num_envs
        self.dead_band = dead_band
        self.prev = np.full((num_envs, 2), np.nan)

    def act(self, obs: np.ndarray, info: dict, episode_start: np.ndarray) -> np.ndarray:
        ram = np.asarray(info["ram"])
        if ram.shape != (self.num_envs, 128):
            raise ValueError(f"expected info['ram'] ({self.num_envs}, 128), got {ram.shape}")
        ram = ram.astype(np.float64)
        self.prev[np.asarray(episode_start, bool)] = np.nan
        x, y = ram[:, 99] - 48.0, ram[:, 101]
        in_play = (y > 0) & (y < CONTACT_Y)
        vx, vy = x - self.prev[:, 0], y - self.prev[:, 1]
        known = in_play & np.isfinite(vx) & (np.abs(vy) < 40) & (vy != 0)
        self.prev = np.where(in_play[:, None], np.stack([x, y], 1), np.nan)

        falling = np.maximum(vy, 1e-6)
        rising = np.maximum(-vy, 1e-6)
        steps_down = (CONTACT_Y - y) / falling
        steps_up = (y - TOP_Y) / rising + (CONTACT_Y - TOP_Y) / rising
        target = fold(x + vx * np.where(vy > 0, steps_down, steps_up), WALL_LO, WALL_HI)
        width = np.where(ram[:, 97] >= 128, 12.0, 16.0)
        centre = ram[:, 72] - 47.0 + width / 2
        error = np.where(known, target - centre, 0.0)
        actions = np.where(
            error > self.dead_band, RIGHT, np.where(error < -self.dead_band, LEFT, NOOP)
        )
        return actions.astype(np.int64)
