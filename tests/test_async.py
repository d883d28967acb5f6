"""Asynchronous rollouts: B < N envs a step, named by env id, each env's trajectory unchanged,
and the agent's state of each env its own."""

import numpy as np
import pytest
import torch

from cfcclone.agent import StatefulAgent
from cfcclone.envs import EnvConfig
from cfcclone.evaluation import evaluate_actor
from cfcclone.models import ConvCfC, PolicyConfig
from cfcclone.rollout import EpisodeTally, rollout
from cfcclone.vector_env import default_batch, make_vector_env

# episodes end by game over or by truncation after at most 500 steps, at different times per env
SHORT = EnvConfig(max_episode_frames=2_000)
SHORTER = EnvConfig(max_episode_frames=1_200)  # 300-step episodes


class Counter:
    """A greedy actor with per-env memory: the action depends on the frame and on the steps
    since the env's episode started, kept by env id."""

    def __init__(self, num_envs: int):
        self.count = np.zeros(num_envs, np.int64)
        self.batches = []

    def act(self, obs, episode_start, info):
        ids = info["env_id"]
        self.batches.append(ids.copy())
        self.count[ids[episode_start]] = 0
        self.count[ids] += 1
        brightness = obs[:, -1].reshape(len(obs), -1).sum(1) // 7
        return ((brightness + self.count[ids]) % 4).astype(np.int64)


def trajectories(num_envs: int, batch: int, steps: int, seed: int = 3):
    """Per env: its first `steps` (obs, action, executed, reward, start, terminated, truncated)."""
    env = make_vector_env("breakout", num_envs, batch_size=batch, config=SHORTER)
    per_env = [[] for _ in range(num_envs)]
    actor = Counter(num_envs)
    for t in rollout(env, actor, seed):
        for k, i in enumerate(t.env_ids):
            per_env[i].append(
                (
                    t.obs[k].tobytes(),
                    int(t.actions[k]),
                    int(t.executed[k]),
                    float(t.reward[k]),
                    bool(t.episode_start[k]),
                    bool(t.terminated[k]),
                    bool(t.truncated[k]),
                )
            )
        if min(map(len, per_env)) >= steps:
            break
    env.close()
    return [rows[:steps] for rows in per_env], actor.batches


@pytest.mark.slow
def test_async_trajectories_equal_sync_byte_for_byte():
    sync, sync_batches = trajectories(8, 8, 700)
    for batch in (4, 2):
        other, batches = trajectories(8, batch, 700)
        assert all(len(ids) == batch for ids in batches)
        assert any(not np.array_equal(ids, batches[0]) for ids in batches)  # really asynchronous
        for env, (a, b) in enumerate(zip(sync, other, strict=True)):
            assert a == b, f"env {env} differs under batch {batch}"
    ends = [[k for k, row in enumerate(rows) if row[5] or row[6]] for rows in sync]
    assert all(len(e) >= 2 for e in ends)  # several episodes per env...
    assert len({tuple(e) for e in ends}) == len(ends)  # ...with resets at different times


def test_async_steps_batches_of_distinct_envs_and_every_env_plays():
    env = make_vector_env("breakout", 6, batch_size=2, config=SHORT)
    seen = np.zeros(6, np.int64)
    for t, _ in zip(rollout(env, Counter(6), seed=0), range(60), strict=False):
        assert len(t.env_ids) <= 2 and len(set(t.env_ids.tolist())) == len(t.env_ids)
        assert t.obs.shape == (len(t.env_ids), 4, 84, 84)
        seen[t.env_ids] += 1
    env.close()
    assert (seen > 0).all()


def first_steps(env, steps: int, seed: int) -> dict:
    """Per env: the obs and rewards of its first `steps` transitions of a rollout."""
    per_env = {i: [] for i in range(env.num_envs)}
    for t in rollout(env, Counter(env.num_envs), seed):
        for k, i in enumerate(t.env_ids):
            per_env[int(i)].append((t.obs[k].tobytes(), float(t.reward[k])))
        if min(map(len, per_env.values())) >= steps:
            return {i: rows[:steps] for i, rows in per_env.items()}


def test_reset_after_an_abandoned_async_rollout_starts_afresh():
    env = make_vector_env("breakout", 4, batch_size=2, config=SHORT)
    for _, _ in zip(rollout(env, Counter(4), seed=9), range(7), strict=False):
        pass  # left with results in flight
    again = first_steps(env, 5, seed=5)
    env.close()
    fresh = make_vector_env("breakout", 4, batch_size=2, config=SHORT)
    assert again == first_steps(fresh, 5, seed=5)
    fresh.close()


def test_batch_size_must_divide_the_envs_and_needs_the_cpp_env():
    with pytest.raises(ValueError, match="batch_size dividing num_envs 8"):
        make_vector_env("breakout", 8, batch_size=3)
    with pytest.raises(ValueError, match="needs the C\\+\\+ env"):
        make_vector_env("breakout", 4, batch_size=2, ram=True)
    assert [default_batch(n) for n in (1, 2, 4, 7, 8, 16, 18)] == [1, 1, 2, 7, 2, 4, 9]


def test_episode_tally_follows_env_ids():
    env = make_vector_env("breakout", 4, batch_size=2, config=EnvConfig(max_episode_frames=400))
    tally, ended, lengths = EpisodeTally(4), [], np.zeros(4, np.int64)
    for t, _ in zip(rollout(env, Counter(4), seed=0), range(400), strict=False):
        lengths[t.env_ids] += 1
        for i, _, length in tally.update(t):
            ended.append(i)
            assert length == lengths[i]
            lengths[i] = 0
    env.close()
    assert sorted(set(ended)) == [0, 1, 2, 3]


@pytest.fixture(scope="module")
def policy():
    torch.manual_seed(0)
    return ConvCfC(PolicyConfig(n_actions=4, encoder="nature", units=16)).eval()


def test_agent_steps_only_the_envs_of_the_batch(policy):
    agent = StatefulAgent(policy, 6)
    rng = np.random.default_rng(0)
    obs = rng.integers(0, 256, (6, 4, 84, 84), dtype=np.uint8)
    agent.act(obs, np.ones(6, bool))
    before = agent.hx.clone()
    ids = np.array([4, 1])
    agent.act(obs[ids], np.zeros(2, bool), {"env_id": ids})
    others = np.setdiff1d(np.arange(6), ids)
    torch.testing.assert_close(agent.hx[others], before[others], rtol=0, atol=0)
    assert not torch.equal(agent.hx[ids], before[ids])
    # the rows of env 4 and 1 are what a lone agent of those two envs computes
    alone = StatefulAgent(policy, 2)
    alone.hx = before[ids].clone()
    alone.act(obs[ids], np.zeros(2, bool))
    torch.testing.assert_close(agent.hx[ids], alone.hx, rtol=1e-5, atol=1e-6)


def test_agent_reset_zeroes_exactly_the_starting_rows(policy):
    agent = StatefulAgent(policy, 5)
    obs = np.random.default_rng(1).integers(0, 256, (5, 4, 84, 84), dtype=np.uint8)
    for _ in range(3):
        agent.act(obs, np.zeros(5, bool))
    before = agent.hx.clone()
    ids, start = np.array([3, 0, 2]), np.array([True, False, True])
    agent.act(obs[ids], start, {"env_id": ids})
    fresh = StatefulAgent(policy, 2)  # envs 3 and 2 started over: as from a zero state
    fresh.act(obs[[3, 2]], np.ones(2, bool))
    torch.testing.assert_close(agent.hx[[3, 2]], fresh.hx, rtol=1e-5, atol=1e-6)
    carried = StatefulAgent(policy, 1)  # env 0 carried its state on
    carried.hx = before[[0]].clone()
    carried.act(obs[[0]], np.zeros(1, bool))
    torch.testing.assert_close(agent.hx[[0]], carried.hx, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(agent.hx[[1, 4]], before[[1, 4]], rtol=0, atol=0)


def test_agent_refuses_bad_env_ids(policy):
    agent = StatefulAgent(policy, 4)
    obs = np.zeros((2, 4, 84, 84), np.uint8)
    with pytest.raises(ValueError, match="env ids in \\[0, 4\\)"):
        agent.act(obs, np.zeros(2, bool), {"env_id": np.array([0, 4])})
    with pytest.raises(ValueError, match="distinct env ids"):
        agent.act(obs, np.zeros(2, bool), {"env_id": np.array([1, 1])})


def test_evaluation_counts_the_same_episodes_async_and_sync():
    config = EnvConfig(max_episode_frames=800)
    results = [
        evaluate_actor(Counter, config, episodes=6, envs=6, seed=2, batch=batch)
        for batch in (6, 3, 2)
    ]
    for r in results[1:]:
        assert sorted(r.returns) == sorted(results[0].returns)
        assert sorted(r.lengths) == sorted(results[0].lengths)
