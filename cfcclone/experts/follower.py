"""The smallest expert: a per-env Python function, as a user would write one.

`follow_ball(obs, info) -> action` plays one Breakout env. It serves (FIRE) while no ball is
in play and otherwise moves the paddle's left edge towards the ball's x, within 8 px. It is
the example for `--expert module:function` (`cfcclone.experts.follower:follow_ball`), and the
tests and the benchmark collect small datasets with it.
"""

from __future__ import annotations

import numpy as np

from cfcclone.experts.ram import Breakout

NOOP, FIRE, RIGHT, LEFT = 0, 1, 2, 3


def follow_ball(obs: np.ndarray, info: dict) -> int:
    """One env: obs (4, 84, 84) uint8 (unused), info["ram"] (128,) uint8 -> a Breakout action."""
    s = Breakout.read(np.asarray(info["ram"])[None])
    if s.ball_x[0] == -48.0:  # ram[99] is 0 while no ball is in play
        return FIRE
    error = s.ball_x[0] - (s.paddle[0] - 1)  # the ball against the paddle's left edge, less 1
    return RIGHT if error > 8 else LEFT if error < -8 else NOOP
