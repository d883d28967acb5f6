"""The one rollout loop: the episode-start rule, executed actions, tallies, on every env kind."""

import numpy as np
import pytest

from cfcclone.envs import FIRE_STEPS, EnvConfig
from cfcclone.rollout import Actor, EpisodeTally, rollout
from cfcclone.vector_env import make_vector_env

SHORT = EnvConfig(max_episode_frames=400)  # about 100-step episodes (no-op starts count)
EXACT = EnvConfig(max_episode_frames=400, sticky_actions=0.0, noop_max=0)
NOOP, FIRE = 0, 1


class Waiter:
    """Plays NOOP everywhere and records what it was given."""

    def __init__(self):
        self.starts, self.infos = [], []

    def act(self, obs, episode_start, info):
        self.starts.append(episode_start.copy())
        self.infos.append(info)
        return np.zeros(len(obs), np.int64)


@pytest.mark.parametrize("ram", [False, True], ids=["c++", "ram"])
def test_episode_starts_and_executed_actions(ram):
    env = make_vector_env(num_envs=2, config=SHORT, ram=ram)
    actor = Waiter()
    assert isinstance(actor, Actor)
    steps = [t for t, _ in zip(rollout(env, actor, seed=0), range(230), strict=False)]
    env.close()
    done = np.array([t.done for t in steps])
    starts = np.array([t.episode_start for t in steps])
    ends = done[:, 0].nonzero()[0]
    assert len(ends) == 2 and 90 < ends[0] < 101  # NOOP only loses lives: truncations
    assert starts[0].all() and (starts[1:] == done[:-1]).all()  # the rule, written once
    assert all((a == s).all() for a, s in zip(actor.starts, starts, strict=False))
    for t in (steps[0], steps[ends[0] + 1]):  # a fresh stack: the first frame four times
        assert (t.obs[0, :3] == t.obs[0, 3:]).all()
    executed = np.array([t.executed for t in steps])[:, 0]
    assert (np.array([t.actions for t in steps]) == NOOP).all()
    for first in (0, *(ends + 1)):  # the env serves at each episode start, also at autoresets
        assert (executed[first : first + FIRE_STEPS] == FIRE).all()
    assert executed[FIRE_STEPS] == NOOP and set(executed) == {NOOP, FIRE}
    assert ("ram" in actor.infos[0]) == ram


def test_both_env_kinds_play_the_same_episode():
    runs = []
    for ram in (False, True):
        env = make_vector_env(num_envs=1, config=EXACT, ram=ram)  # the RNGs differ, not the rules
        runs.append([t for t, _ in zip(rollout(env, Waiter(), seed=3), range(120), strict=False)])
        env.close()
    for a, b in zip(*runs, strict=True):
        np.testing.assert_array_equal(a.obs, b.obs)
        assert (a.reward == b.reward).all() and (a.done == b.done).all()


def test_tally_returns_finished_episodes():
    env = make_vector_env(num_envs=2, config=EXACT)
    tally, ended = EpisodeTally(2), []
    for t, _ in zip(rollout(env, Waiter(), seed=0), range(200), strict=False):
        ended += tally.update(t)
    env.close()
    assert sorted(ended) == [(0, 0.0, 100), (0, 0.0, 100), (1, 0.0, 100), (1, 0.0, 100)]
