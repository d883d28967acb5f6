"""StatefulAgent: the carried state equals a whole-sequence pass; resets are per env."""

import numpy as np
import pytest
import torch

from cfcclone import ConvCfC, PolicyConfig, StatefulAgent, make_vector_env


@pytest.fixture(params=[False, True], ids=["cfc", "mixed_memory"])
def policy(request):
    torch.manual_seed(0)
    cfg = PolicyConfig(n_actions=4, encoder="nature", units=16, mixed_memory=request.param)
    return ConvCfC(cfg).eval()


def _frames(n, t, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, t, 4, 84, 84), dtype=torch.uint8, generator=g)


def test_stepping_equals_one_sequence_pass(policy):
    obs = _frames(2, 12)
    with torch.no_grad():
        whole, _ = policy(obs)
    agent = StatefulAgent(policy, num_envs=2)
    start = np.array([True, True])
    for t in range(12):
        logits = agent.step(obs[:, t], start)
        start = np.array([False, False])
        torch.testing.assert_close(logits, whole[:, t], rtol=0, atol=1e-5)


def test_restart_of_one_env_leaves_the_others_untouched(policy):
    k, steps = 5, 10
    obs = _frames(3, steps)
    with torch.no_grad():
        whole, _ = policy(obs)
        fresh, _ = policy(obs[1:2, k:])
    agent = StatefulAgent(policy, num_envs=3)
    for t in range(steps):
        start = np.array([t == 0, t in (0, k), t == 0])
        logits = agent.step(obs[:, t], start)
        torch.testing.assert_close(logits[[0, 2]], whole[[0, 2], t], rtol=0, atol=1e-5)
        if t >= k:
            torch.testing.assert_close(logits[1], fresh[0, t - k], rtol=0, atol=1e-5)
        else:
            torch.testing.assert_close(logits[1], whole[1, t], rtol=0, atol=1e-5)


def test_reset_clears_every_env(policy):
    obs = _frames(2, 3)
    agent = StatefulAgent(policy, num_envs=2)
    first = agent.step(obs[:, 0], np.array([True, True]))
    agent.step(obs[:, 1], np.array([False, False]))
    agent.reset()
    torch.testing.assert_close(agent.step(obs[:, 0], np.array([False, False])), first)


def test_greedy_and_sampled_actions(policy):
    obs = _frames(4, 1)[:, 0].numpy()
    start = np.ones(4, dtype=bool)
    greedy = StatefulAgent(policy, 4).act(obs, start)
    assert greedy.shape == (4,) and greedy.dtype == np.int64
    logits = StatefulAgent(policy, 4).step(obs, start)
    assert np.array_equal(greedy, logits.argmax(-1).numpy())
    a = StatefulAgent(policy, 4, temperature=1.0, seed=3).act(obs, start)
    b = StatefulAgent(policy, 4, temperature=1.0, seed=3).act(obs, start)
    assert np.array_equal(a, b) and ((0 <= a) & (a < 4)).all()


def test_autoreset_marks_the_step_after_done_as_an_episode_start(policy):
    venv = make_vector_env("breakout", 2, max_episode_frames=200)
    agent = StatefulAgent.for_env(policy, venv)
    obs, _ = venv.reset(seed=0)
    start = np.ones(2, dtype=bool)
    starts = 0
    for _ in range(120):
        obs, _, term, trunc, info = venv.step(agent.act(obs, start))
        start = term | trunc
        if start.any():  # same-step autoreset: the returned frames are a fresh stack
            assert (obs[start, :3] == obs[start, 3:]).all()
            starts += int(start.sum())
    assert starts >= 2


@pytest.mark.parametrize(
    "obs, start, message",
    [
        (
            np.zeros((2, 4, 84, 84), np.float32),
            np.ones(2, bool),
            r"uint8, got \(2, 4, 84, 84\) float32",
        ),
        (np.zeros((3, 4, 84, 84), np.uint8), np.ones(2, bool), "expected obs for 2 envs, got 3"),
        (
            np.zeros((2, 4, 84, 84), np.uint8),
            np.ones(3, bool),
            r"episode_start \(2,\) bool, got \(3,\)",
        ),
        (
            np.zeros((2, 4, 84, 84), np.uint8),
            np.ones(2, int),
            r"episode_start \(2,\) bool, got \(2,\) int",
        ),
    ],
)
def test_bad_input_raises(policy, obs, start, message):
    with pytest.raises(ValueError, match=message):
        StatefulAgent(policy, 2).act(obs, start)


def test_policy_with_the_wrong_action_count_is_refused():
    policy = ConvCfC(PolicyConfig(n_actions=6, encoder="nature", units=8))
    with pytest.raises(ValueError, match=r"policy has 6 actions but the env has 4"):
        StatefulAgent.for_env(policy, make_vector_env("breakout", 2))


def test_without_onnxruntime_auto_runs_torch_and_onnx_is_refused(policy, monkeypatch):
    from cfcclone import runtime

    monkeypatch.setattr(runtime, "onnx_available", lambda: False)
    assert isinstance(runtime.make_agent(policy, 2, runtime="auto"), StatefulAgent)
    with pytest.raises(ValueError, match=r"runtime onnx needs onnxruntime: pip install"):
        runtime.make_agent(policy, 2, runtime="onnx")


def test_a_prev_action_agent_reads_info_action_and_steps_as_one_sequence_pass():
    from cfcclone.agent import previous_actions

    torch.manual_seed(0)
    policy = ConvCfC(PolicyConfig(n_actions=4, encoder="nature", units=16, prev_action=True))
    policy.eval()
    obs, steps = _frames(2, 8), 8
    executed = torch.randint(0, 4, (2, steps), generator=torch.Generator().manual_seed(1))
    prev = torch.cat([torch.full((2, 1), -1), executed[:, :-1]], 1)
    starts = torch.zeros(2, steps, dtype=torch.bool)
    starts[:, 0] = starts[1, 5] = True
    with torch.no_grad():
        whole, _ = policy(obs, None, starts, prev)
    agent, stepper = StatefulAgent(policy, num_envs=2), StatefulAgent(policy, num_envs=2)
    for t in range(steps):
        info = {} if t == 0 else {"action": executed[:, t - 1].numpy()}  # reset: none
        greedy = agent.act(obs[:, t].numpy(), starts[:, t].numpy(), info)
        assert np.array_equal(greedy, whole[:, t].argmax(-1).numpy())
        logits = stepper.step(obs[:, t], starts[:, t].numpy(), None, prev[:, t])
        torch.testing.assert_close(logits, whole[:, t], rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="the env's info has no 'action'"):
        previous_actions(policy.config, {}, np.array([True, False]))
    got = previous_actions(policy.config, {"action": np.array([2, 3])}, np.array([True, False]))
    assert got.tolist() == [-1, 3]
    assert previous_actions(PolicyConfig(n_actions=4), {}, np.array([False])) is None
