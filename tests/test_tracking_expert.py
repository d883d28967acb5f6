"""The clonable Breakout tracker: a step function of visible geometry, reset per episode."""

import numpy as np
import pytest

from cfcclone.envs import make_env
from cfcclone.experts import make_expert
from cfcclone.experts.scripted import fold
from cfcclone.experts.tracking import LEFT, NOOP, RIGHT, WALL_HI, WALL_LO, BreakoutTracker


def _ram(ball_x, ball_y, paddle_left):
    ram = np.zeros((1, 128), np.uint8)
    ram[0, 99], ram[0, 101], ram[0, 72] = ball_x + 48, ball_y, paddle_left + 47
    return ram


def _act(expert, ram, start=False):
    return expert.act(np.zeros((1, 4, 84, 84), np.uint8), {"ram": ram}, np.array([start]))[0]


def test_moves_towards_the_landing_point_and_waits_inside_the_dead_band():
    expert = BreakoutTracker(dead_band=10)
    assert _act(expert, _ram(100, 100, 20), start=True) == NOOP  # no velocity yet
    # Falling straight down at x=100 while the paddle's centre is at 28: go right.
    assert _act(expert, _ram(100, 104, 20)) == RIGHT
    expert = BreakoutTracker(dead_band=10)
    _act(expert, _ram(30, 100, 100), start=True)
    assert _act(expert, _ram(30, 104, 100)) == LEFT
    expert = BreakoutTracker(dead_band=10)
    _act(expert, _ram(60, 100, 50), start=True)
    assert _act(expert, _ram(60, 104, 50)) == NOOP  # centre 58, within 10 px


def test_fold_reflects_between_the_walls():
    assert fold(20.0, WALL_LO, WALL_HI) == 20.0
    assert fold(160.0, WALL_LO, WALL_HI) == 144.0
    assert fold(0.0, WALL_LO, WALL_HI) == 16.0


def test_episode_start_forgets_the_previous_ball():
    a, b = BreakoutTracker(2), BreakoutTracker(1)
    ram2 = np.concatenate([_ram(100, 100, 20), _ram(100, 100, 20)])
    a.act(np.zeros((2, 4, 84, 84), np.uint8), {"ram": ram2}, np.array([True, True]))
    ram2 = np.concatenate([_ram(100, 104, 20), _ram(100, 104, 20)])
    out = a.act(np.zeros((2, 4, 84, 84), np.uint8), {"ram": ram2}, np.array([False, True]))
    assert out[0] == RIGHT and out[1] == _act(b, _ram(100, 104, 20), start=True) == NOOP


def test_plays_and_scores_deterministically():
    def run():
        env, expert = (
            make_env("breakout", max_episode_frames=2000),
            make_expert("tracker", "breakout"),
        )
        obs, info = env.reset(seed=4)
        actions, score, start = [], 0.0, True
        for _ in range(500):
            a = expert.act(obs[None], {"ram": info["ram"][None]}, np.array([start]))[0]
            obs, r, term, trunc, info = env.step(int(a))
            actions.append(int(a))
            score, start = score + r, False
            if term or trunc:
                break
        return actions, score

    first, second = run(), run()
    assert first == second and first[1] > 0


def test_bad_ram_shape_and_wrong_game():
    with pytest.raises(ValueError, match=r"expected info\['ram'\] \(2, 128\), got \(1, 128\)"):
        BreakoutTracker(2).act(
            np.zeros((2, 4, 84, 84), np.uint8), {"ram": _ram(1, 1, 1)}, np.ones(2, bool)
        )
    with pytest.raises(ValueError, match="tracker expert plays breakout, not 'pong'"):
        make_expert("tracker", "pong")
