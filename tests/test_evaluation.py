"""Closed-loop evaluation: exactly N episodes, a fixed quota per env, experts and policies."""

import numpy as np
import pytest
import torch

from cfcclone import ConvCfC, PolicyConfig
from cfcclone.envs import EnvConfig
from cfcclone.evaluation import evaluate_expert, evaluate_policy, run_episodes

SHORT = EnvConfig(max_episode_frames=400)  # 100-step episodes


class _Counter:
    """An actor that records which envs asked for actions, and plays NOOP."""

    def __init__(self):
        self.starts = []

    def act(self, obs, start, info):
        self.starts.append(start.copy())
        return np.zeros(len(obs), np.int64)


def test_exactly_n_episodes_with_a_fixed_quota_per_env():
    from cfcclone.vector_env import make_vector_env

    actor = _Counter()
    result = run_episodes(actor, make_vector_env(num_envs=3, **SHORT.to_dict()), 7, seed=0)
    assert len(result.returns) == len(result.lengths) == 7
    assert all(n == 100 for n in result.lengths)  # NOOP never loses: every episode truncates
    assert result.steps == 3 * 300  # quotas 3, 2, 2: the loop runs until env 0 has its 3


def test_a_callable_expert_plays_on_across_episode_ends():
    # the vector env's info holds "final_info" dicts where an episode ends; a per-env
    # callable must still get only its own env's arrays there
    seen = []

    def fire_then_track(obs, info):
        seen.append(sorted(info))
        return 1

    result = evaluate_expert(fire_then_track, SHORT, episodes=4, envs=2)
    assert len(result.returns) == 4
    assert len(seen) == result.steps and all("ram" in keys for keys in seen)
    assert not any(k.startswith(("_", "final")) for keys in seen for k in keys)


def test_policy_evaluation_is_seeded_and_restores_training_mode():
    torch.manual_seed(0)
    policy = ConvCfC(PolicyConfig(n_actions=4, encoder="nature", units=8)).train()
    a = evaluate_policy(policy, SHORT, episodes=3, envs=2, seed=5)
    b = evaluate_policy(policy, SHORT, episodes=3, envs=2, seed=5)
    assert a.returns == b.returns and a.lengths == b.lengths and len(a.returns) == 3
    assert policy.training


def test_zero_episodes_is_refused():
    policy = ConvCfC(PolicyConfig(n_actions=4, encoder="nature", units=8))
    with pytest.raises(ValueError, match="expected episodes >= 1, got 0"):
        evaluate_policy(policy, SHORT, episodes=0)
    with pytest.raises(ValueError, match="expected episodes >= 1, got 0"):
        evaluate_expert("tracker", SHORT, episodes=0)
