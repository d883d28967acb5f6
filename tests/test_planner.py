"""Scripted RAM experts: shapes, determinism, per-env memory, play, calibration, input checks."""

import numpy as np
import pytest

from cfcclone.envs import make_env
from cfcclone.experts import expert_name, make_expert
from cfcclone.experts.planner import (
    PLANNERS,
    PLANS,
    BreakoutExpert,
    PongExpert,
    fold,
    is_hold,
    unfold_velocity,
)


def play(game, seed, steps, expert=None, **env_overrides):
    """Actions, per-step (obs, ram) records and return of `steps` steps of one env."""
    env = make_env(game, **env_overrides)
    expert = expert or PLANNERS[game](1)
    obs, info = env.reset(seed=seed)
    start, actions, records, ret = True, [], [], 0.0
    for _ in range(steps):
        records.append((obs, info["ram"]))
        a = expert.act(obs[None], np.array([start]), {"ram": info["ram"][None]})
        assert a.shape == (1,) and a.dtype == np.int64
        actions.append(int(a[0]))
        obs, reward, terminated, truncated, info = env.step(actions[-1])
        ret += reward
        start = False
        if terminated or truncated:
            break
    return actions, records, ret


@pytest.mark.parametrize("game", ["breakout", "pong"])
def test_actions_are_int64_in_the_minimal_action_set(game):
    actions, _, _ = play(game, seed=0, steps=100)
    n_actions = make_env(game).action_space.n
    assert set(actions) <= {0, 2, 3} and max(actions) < n_actions
    assert len(set(actions)) == 3, "the expert should both wait and move both ways"
    assert PLANNERS[game].game == game


@pytest.mark.parametrize("game", ["breakout", "pong"])
def test_same_seed_same_actions(game):
    first, _, _ = play(game, seed=3, steps=200)
    second, _, _ = play(game, seed=3, steps=200)
    assert first == second


@pytest.mark.parametrize("game", ["breakout", "pong"])
def test_memory_resets_per_env_at_episode_start(game):
    """Env 1 plays one episode, then restarts on another at step 30: from there it acts like a
    fresh expert, and env 0 is untouched (replayed RAM: the expert only sees its inputs)."""
    acts_a, a, _ = play(game, seed=1, steps=90)
    acts_b, b, _ = play(game, seed=2, steps=60)
    _, c, _ = play(game, seed=3, steps=30)
    batch, switch = PLANNERS[game](2), 30
    got_a, got_b = [], []
    for t in range(90):
        (o0, r0), (o1, r1) = a[t], (c[t] if t < switch else b[t - switch])
        start = np.array([t == 0, t in (0, switch)])
        acts = batch.act(np.stack([o0, o1]), start, {"ram": np.stack([r0, r1])})
        got_a.append(int(acts[0]))
        got_b += [int(acts[1])] if t >= switch else []
    assert got_a == acts_a
    assert got_b == acts_b


def test_breakout_expert_scores_in_a_short_game():
    _, _, ret = play("breakout", seed=0, steps=10_000, max_episode_frames=2000)
    assert ret > 0


def test_pong_expert_wins_points_and_returns_the_ball():
    actions, records, ret = play("pong", seed=0, steps=10_000, max_episode_frames=4000)
    x = np.array([int(r[49]) for _, r in records])
    returned = (x[1:-1] > x[:-2]) & (x[2:] < x[1:-1]) & (x[1:-1] > 150)  # bounced off our paddle
    assert returned.sum() >= 3 and ret > 0


@pytest.mark.parametrize(
    "game, action, address, sign",
    [("breakout", 2, 72, +1), ("breakout", 3, 72, -1), ("pong", 3, 51, +1), ("pong", 2, 51, -1)],
)
def test_action_moves_the_paddle_as_calibrated(game, action, address, sign):
    """RIGHT moves Breakout's paddle right; in Pong LEFT moves it down (y up), RIGHT up."""
    env = make_env(game, sticky_actions=0.0, noop_max=0)
    _, info = env.reset(seed=0)
    for _ in range(3):  # past the forced FIRE steps
        _, _, _, _, info = env.step(0)
    before = int(info["ram"][address])
    for _ in range(3):
        _, _, _, _, info = env.step(action)
    assert sign * (int(info["ram"][address]) - before) > 10


def test_fold_and_wall_unfolding():
    assert fold(160, 8, 152) == 144 and fold(-2, 8, 152) == 18 and fold(100, 8, 152) == 100
    # moving right at 4 px/step, the ball hit the wall at 152 inside the step: 150 -> 150
    v = unfold_velocity(np.array([150.0]), np.array([150.0]), np.array([4.0]), 8, 152)
    assert v.tolist() == [-4.0]
    v = unfold_velocity(np.array([100.0]), np.array([96.0]), np.array([np.nan]), 8, 152)
    assert v.tolist() == [4.0]


def test_holds_are_press_then_release():
    holds = {tuple(int(v) for v in p) for p in PLANS[3][is_hold(PLANS[3])]}
    assert holds == {
        (0, 0, 0),
        (1, 0, 0),
        (1, 1, 0),
        (1, 1, 1),
        (-1, 0, 0),
        (-1, -1, 0),
        (-1, -1, -1),
    }


@pytest.mark.parametrize("cls", [BreakoutExpert, PongExpert])
def test_bad_inputs_name_expected_and_got(cls):
    expert = cls(2)
    obs, ram, start = np.zeros((2, 4, 84, 84), np.uint8), np.zeros((2, 128), np.uint8), np.ones(2)
    with pytest.raises(
        ValueError, match=r"expected info\['ram'\] of shape \(2, 128\), got \(128,\)"
    ):
        expert.act(obs, start, {"ram": ram[0]})
    with pytest.raises(ValueError, match=r"expected obs \(2, stack, H, W\), got shape \(1, 4, 84"):
        expert.act(obs[:1], start, {"ram": ram})
    with pytest.raises(ValueError, match=r"expected episode_start of shape \(2,\), got \(\)"):
        expert.act(obs, True, {"ram": ram})
    with pytest.raises(ValueError, match="expected info to be a dict with 'ram'"):
        expert.act(obs, start, {"lives": np.ones(2)})
    with pytest.raises(ValueError, match="expected num_envs >= 1, got 0"):
        cls(0)
    ram[:, 51] = 118  # Pong's paddle at its home height
    assert expert.act(obs, start, {"ram": ram}).tolist() == [0, 0]  # no ball: wait


def test_make_expert_builds_the_planners_under_both_names():
    assert isinstance(make_expert("planner", "pong", num_envs=3), PongExpert)
    assert isinstance(make_expert("scripted", "pong", num_envs=3), PongExpert)  # the old name
    assert make_expert("planner", "breakout").num_envs == 1
    assert expert_name("scripted") == expert_name("planner") == "planner"
    with pytest.raises(ValueError, match="no planner for 'tennis'"):
        make_expert("planner", "tennis")


def label(game, seed, steps, player, tell: bool):
    """The planner's labels on `steps` steps of one env played by `player(t, label)`; `tell`:
    info carries the action the env executed, as every cfcclone env reports it."""
    env, expert = make_env(game), PLANNERS[game](1)
    obs, info = env.reset(seed=seed)
    labels = []
    for t in range(steps):
        seen = {"ram": info["ram"][None]}
        if tell and "action" in info:
            seen["action"] = np.array([info["action"]])
        labels.append(int(expert.act(obs[None], np.array([t == 0]), seen)[0]))
        obs, _, terminated, truncated, info = env.step(player(t, labels[-1]))
        assert not (terminated or truncated)
    return np.array(labels)


@pytest.mark.parametrize("game", ["breakout", "pong"])
def test_told_what_it_played_the_planner_plays_as_before(game):
    told = label(game, seed=0, steps=2000, player=lambda t, a: a, tell=True)
    untold = label(game, seed=0, steps=2000, player=lambda t, a: a, tell=False)
    assert (told == untold).all() and (told != 0).mean() > 0.05


def test_labelling_a_still_paddle_the_pong_planner_keeps_asking_for_the_move():
    """A player that never moves (a DAgger student that ignores the label): the paddle stays
    at rest, so after a press label the next state needs the press as much. Told the executed
    NOOP, the planner keeps asking; judging the paddle's momentum by its own label (as before
    the env's action was read) it believed its press had moved the knob and asked to wait."""

    def flips(labels):  # press, wait, press on three steps in a row
        move = labels != 0
        return int((move[:-2] & ~move[1:-1] & move[2:]).sum())

    told = label("pong", seed=0, steps=700, player=lambda t, a: 0, tell=True)
    untold = label("pong", seed=0, steps=700, player=lambda t, a: 0, tell=False)
    assert (told != 0).sum() > 100
    assert flips(told) == 0 and flips(untold) > 5


def test_the_executed_action_must_have_one_row_per_env():
    expert, ram = PongExpert(2), np.zeros((2, 128), np.uint8)
    with pytest.raises(ValueError, match=r"expected info\['action'\] of shape \(2,\), got \(3,\)"):
        expert.act(
            np.zeros((2, 4, 84, 84), np.uint8), np.ones(2), {"ram": ram, "action": np.zeros(3)}
        )
