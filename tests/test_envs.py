"""The env factory: tutorial preprocessing, single == vector byte for byte, the FIRE protocol."""

import cv2
import numpy as np
import pytest
import torch

from cfcclone.envs import FIRE_STEPS, EnvConfig, action_meanings, make_env
from cfcclone.vector_env import make_vector_env

DETERMINISTIC = dict(sticky_actions=0.0, noop_max=0)


def test_observation_space_is_uint8_channel_first():
    env = make_env("breakout")
    obs, info = env.reset(seed=0)
    assert obs.shape == (4, 84, 84) and obs.dtype == np.uint8
    assert env.observation_space.shape == (4, 84, 84)
    assert info["ram"].shape == (128,)
    venv = make_vector_env("breakout", 3)
    vobs, _ = venv.reset(seed=0)
    assert vobs.shape == (3, 4, 84, 84) and vobs.dtype == np.uint8


def test_reset_stack_repeats_the_first_frame():
    obs, _ = make_env("breakout").reset(seed=0)
    assert all((obs[i] == obs[-1]).all() for i in range(4))
    vobs, _ = make_vector_env("breakout", 2).reset(seed=0)
    assert (vobs[:, :3] == vobs[:, 3:]).all()


@pytest.mark.parametrize("max_pool", [True, False])
def test_single_and_vector_envs_agree_byte_for_byte(max_pool):
    # Short episodes, so that truncation, termination and the reset path are all crossed.
    cfg = dict(DETERMINISTIC, max_episode_frames=800, max_pool=max_pool)
    single = make_env("breakout", **cfg)
    vector = make_vector_env("breakout", 1, **cfg)
    o1, _ = single.reset(seed=5)
    o2, _ = vector.reset(seed=5)
    assert np.array_equal(o1, o2[0])
    rng = np.random.default_rng(0)
    episodes = 0
    for _ in range(700):
        a = int(rng.integers(0, 4))
        o1, r1, te1, tr1, i1 = single.step(a)
        o2, r2, te2, tr2, i2 = vector.step(np.array([a]))
        assert (r1, te1, tr1, i1["action"]) == (r2[0], te2[0], tr2[0], i2["action"][0])
        if te1 or tr1:
            assert np.array_equal(o1, i2["final_obs"][0])
            o1, _ = single.reset()
            episodes += 1
        assert np.array_equal(o1, o2[0])
    assert episodes >= 3


def test_without_max_pool_a_step_shows_its_last_frame():
    pooled, last = make_env(**DETERMINISTIC), make_env(max_pool=False, **DETERMINISTIC)
    pooled.reset(seed=0), last.reset(seed=0)
    differ = 0
    for a in [1, 1] + [2] * 30:
        p, *_ = pooled.step(a)
        q, *_ = last.step(a)
        screen = last.unwrapped.ale.getScreenGrayscale()  # the last emulated frame
        assert np.array_equal(q[-1], cv2.resize(screen, (84, 84), interpolation=cv2.INTER_AREA))
        differ += not np.array_equal(p[-1], q[-1])
    assert differ > 0  # the pool shows the ball in two places where it moves
    assert "max_pool=False" in last.config.describe()
    assert EnvConfig().describe() == "breakout (the default preprocessing)"


def test_vector_env_frames_slide_by_one_step():
    venv = make_vector_env("breakout", 2, **DETERMINISTIC)
    prev, _ = venv.reset(seed=0)
    for _ in range(20):
        obs, *_ = venv.step(np.array([2, 3]))
        assert np.array_equal(obs[:, :3], prev[:, 1:])
        prev = obs


def test_dataset_stacks_pad_with_the_episode_start_as_the_env_does():
    from cfcclone.data import expand_stacks

    frames = torch.arange(13).reshape(1, 13, 1, 1)  # step t's newest frame is t + 3
    start = torch.zeros(1, 10, dtype=torch.bool)
    start[0, 6] = True  # a new episode begins at step 6, with frame 9
    stacks = expand_stacks(frames, start)[0, :, :, 0, 0].tolist()
    assert stacks[5] == [5, 6, 7, 8]
    assert stacks[6] == [9, 9, 9, 9] and stacks[7] == [9, 9, 9, 10] and stacks[9] == [9, 10, 11, 12]


def _noop_until_life_lost(env, steps=400):
    obs, info = env.reset(seed=1)
    executed, lives = [], [info["lives"]]
    for _ in range(steps):
        obs, _, term, trunc, info = env.step(0)
        executed.append(info["action"])
        lives.append(info["lives"])
        if term or trunc:
            break
    return executed, lives


def test_fire_on_reset_and_on_every_lost_life():
    env = make_env("breakout", **DETERMINISTIC)
    executed, lives = _noop_until_life_lost(env, 800)
    fire = env.action_meanings.index("FIRE")
    assert executed[:FIRE_STEPS] == [fire] * FIRE_STEPS
    assert executed[FIRE_STEPS] == 0
    lost = [t for t in range(1, len(lives)) if lives[t] < lives[t - 1]]
    assert len(lost) >= 2, "a NOOP agent whose serves are forced loses its lives"
    for t in lost[:-1]:  # the step after a loss at step t is executed[t]
        assert executed[t : t + FIRE_STEPS] == [fire] * FIRE_STEPS


def test_strict_protocol_never_serves_for_the_agent():
    env = make_env("breakout", fire=False, **DETERMINISTIC)
    executed, lives = _noop_until_life_lost(env, 300)
    assert set(executed) == {0}
    assert lives[-1] == lives[0], "without FIRE the ball is never served"


def test_vector_env_fires_per_env_after_its_own_life_loss():
    venv = make_vector_env("breakout", 2, **DETERMINISTIC)
    _, info = venv.reset(seed=0)
    prev_lives = info["lives"].copy()
    fired_after_loss = 0
    for _ in range(600):
        _, _, term, trunc, info = venv.step(np.zeros(2, dtype=np.int64))
        lost = (info["lives"] < prev_lives) & ~(term | trunc)
        prev_lives = info["lives"].copy()
        if lost.any():
            _, _, _, _, nxt = venv.step(np.zeros(2, dtype=np.int64))
            assert (nxt["action"][lost] == 1).all()
            fired_after_loss += 1
            prev_lives = nxt["lives"].copy()
    assert fired_after_loss >= 2


def test_action_meanings_are_exposed():
    assert action_meanings("breakout") == ["NOOP", "FIRE", "RIGHT", "LEFT"]
    assert make_env("pong").action_meanings == action_meanings("pong")
    assert make_vector_env("pong", 1).action_meanings == action_meanings("pong")


def test_unknown_game_names_the_valid_ones():
    with pytest.raises(ValueError, match="unknown game 'Breakout'.*did you mean 'breakout'"):
        make_env("Breakout")
    with pytest.raises(ValueError, match="unknown game 'tetris2'"):
        make_vector_env("tetris2", 2)


@pytest.mark.parametrize("bad", [np.array([0, 1]), np.array([0.5]), np.array([[0]]), np.array([7])])
def test_bad_actions_raise(bad):
    venv = make_vector_env("breakout", 1)
    venv.reset(seed=0)
    with pytest.raises(ValueError, match="expected actions"):
        venv.step(bad)


def test_config_round_trips_and_rejects_unknown_fields():
    cfg = EnvConfig(game="pong", sticky_actions=0.0)
    assert EnvConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match=r"EnvConfig: unknown fields \[.clip.\]"):
        EnvConfig.from_dict({"game": "pong", "clip": True})
