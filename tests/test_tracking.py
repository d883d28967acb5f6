"""The clonable Breakout tracker: follows the ball one step ahead, reset per episode."""

import numpy as np
import pytest

from cfcclone.envs import make_env
from cfcclone.experts import make_expert
from cfcclone.experts.tracking import LEFT, NOOP, RIGHT, BreakoutTracker


def _ram(ball_x, ball_y, paddle_left):
    """RAM with the ball at (x, y) and the paddle at rest with its left edge at paddle_left."""
    ram = np.zeros((1, 128), np.uint8)
    ram[0, 99], ram[0, 101] = ball_x + 48, ball_y
    ram[0, 72], ram[0, 70] = paddle_left + 47, 187 - paddle_left
    return ram


def _act(expert, ram, start=False):
    return expert.act(np.zeros((1, 4, 84, 84), np.uint8), np.array([start]), {"ram": ram})[0]


def test_moves_towards_where_the_ball_will_be_and_waits_inside_the_dead_band():
    expert = BreakoutTracker(dead_band=8)
    assert _act(expert, _ram(100, 100, 20), start=True) == RIGHT  # ball at 100, centre at 28
    expert = BreakoutTracker(dead_band=8)
    assert _act(expert, _ram(30, 100, 100), start=True) == LEFT
    expert = BreakoutTracker(dead_band=8)
    assert _act(expert, _ram(60, 100, 46), start=True) == NOOP  # centre 54, 6 px away
    # the ball moves 1 px a step: heading to 61, 7 px from the centre, it still waits
    expert = BreakoutTracker(dead_band=8)
    _act(expert, _ram(59, 100, 46), start=True)
    assert _act(expert, _ram(60, 104, 46)) == NOOP
    # the ball moves 6 px a step: heading to 66, 12 px from the centre, the paddle goes
    expert = BreakoutTracker(dead_band=8)
    _act(expert, _ram(54, 100, 46), start=True)
    assert _act(expert, _ram(60, 104, 46)) == RIGHT


def test_aims_with_the_paddles_rest_point_not_where_it_is_now():
    ram = _ram(100, 100, 20)
    ram[0, 70] = 187 - 90  # the knob already sends the paddle to 90: centre 98
    assert _act(BreakoutTracker(), ram, start=True) == NOOP


def test_waits_while_no_ball_is_in_play():
    assert _act(BreakoutTracker(), _ram(100, 0, 20), start=True) == NOOP


def test_episode_start_forgets_the_previous_ball():
    a, b = BreakoutTracker(2), BreakoutTracker(1)
    ram2 = np.concatenate([_ram(40, 100, 46), _ram(40, 100, 46)])
    a.act(np.zeros((2, 4, 84, 84), np.uint8), np.array([True, True]), {"ram": ram2})
    ram2 = np.concatenate([_ram(60, 104, 46), _ram(60, 104, 46)])
    out = a.act(np.zeros((2, 4, 84, 84), np.uint8), np.array([False, True]), {"ram": ram2})
    # env 0 saw the ball move 20 px right (heading to 80); env 1 starts afresh (60: waits)
    assert out[0] == RIGHT and out[1] == _act(b, _ram(60, 104, 46), start=True) == NOOP


def test_plays_and_scores_deterministically():
    def run():
        env, expert = (
            make_env("breakout", max_episode_frames=2000),
            make_expert("tracker", "breakout"),
        )
        obs, info = env.reset(seed=4)
        actions, score, start = [], 0.0, True
        for _ in range(500):
            a = expert.act(obs[None], np.array([start]), {"ram": info["ram"][None]})[0]
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
            np.zeros((2, 4, 84, 84), np.uint8), np.ones(2, bool), {"ram": _ram(1, 1, 1)}
        )
    with pytest.raises(ValueError, match="tracker expert plays breakout, not 'pong'"):
        make_expert("tracker", "pong")
