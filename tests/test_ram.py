"""The RAM readers: screen positions from the addresses, one home for every expert."""

import numpy as np
import pytest

from cfcclone.envs import make_env
from cfcclone.experts.ram import Breakout, Pong, state_vector


def test_breakout_positions_from_ram():
    ram = np.zeros((2, 128), np.uint8)
    ram[:, 99], ram[:, 101], ram[:, 72], ram[:, 70] = [148, 60], [100, 0], [67, 90], [150, 10]
    ram[1, 97] = 128  # the ball has hit the top wall: a narrower paddle
    s = Breakout.read(ram)
    assert s.ball_x.tolist() == [100.0, 12.0] and s.ball_y.tolist() == [100.0, 0.0]
    assert s.paddle.tolist() == [20.0, 43.0] and s.width.tolist() == [16.0, 12.0]
    assert s.rest.tolist() == [37.0, 144.0]  # 187 - knob, clipped to the paddle's range


def test_the_paddle_rests_where_the_env_shows_it():
    env = make_env("breakout", sticky_actions=0.0, noop_max=0)
    _, info = env.reset(seed=0)
    for _ in range(30):  # wait: the paddle comes to rest
        _, _, _, _, info = env.step(0)
    s = Breakout.read(info["ram"][None])
    assert s.paddle[0] == s.rest[0]
    env.close()


def test_pong_and_bad_shapes():
    ram = np.zeros((1, 128), np.uint8)
    ram[0, 49], ram[0, 54], ram[0, 51] = 120, 80, 118
    s = Pong.read(ram)
    assert (s.ball_x[0], s.ball_y[0], s.paddle[0]) == (120.0, 80.0, 118.0)
    with pytest.raises(ValueError, match=r"expected ram \(N, 128\), got \(128,\)"):
        Breakout.read(ram[0])


def test_state_vector_stacks_the_readers_fields_in_order():
    ram = np.zeros((2, 128), np.uint8)
    ram[:, 49], ram[:, 54], ram[:, 51] = [120, 7], [80, 9], [118, 40]
    v = state_vector("pong", ram)
    assert v.dtype == np.float32 and v.tolist() == [[120, 80, 118], [7, 9, 40]]
    s = Breakout.read(ram)
    assert state_vector("breakout", ram)[:, 0].tolist() == s.ball_x.tolist()
    assert state_vector("breakout", ram).shape == (2, 5)
    with pytest.raises(ValueError, match="no RAM reader for 'space_invaders'"):
        state_vector("space_invaders", ram)
