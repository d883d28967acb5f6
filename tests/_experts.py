"""A cheap deterministic test expert: follows the ball's x from RAM (breakout)."""

import numpy as np


def follow_ball(obs: np.ndarray, info: dict) -> int:
    ball_x, paddle_x = int(info["ram"][99]), int(info["ram"][72])
    if ball_x == 0:
        return 1
    return 2 if ball_x > paddle_x + 8 else 3 if ball_x < paddle_x - 8 else 0
