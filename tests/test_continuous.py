"""State vectors and Box actions through the whole chain: shards, the policy, training,
the agent, a checkpoint, ONNX, `predict` and DAgger, on Pendulum-v1 (no MuJoCo needed)."""

import importlib.util
import json

import numpy as np
import pytest
import torch

from cfcclone import StatefulAgent, collect, load_policy, make_vector_env
from cfcclone.data.format import DatasetError, Segment, open_shard, sha256, write_shard
from cfcclone.experts import make_expert
from cfcclone.experts.mlp import MLPExpert
from cfcclone.models import ConvCfC, PolicyConfig
from cfcclone.spaces import ActionSpec, ObsSpec
from cfcclone.training import TrainConfig, Trainer

BOX = ActionSpec("box", [-2.0], [2.0])


def pendulum_expert(path=None) -> MLPExpert:
    """A fixed random MLP state expert for Pendulum-v1."""
    torch.manual_seed(0)
    expert = MLPExpert([3, 16, 1], [-2.0], [2.0], "Pendulum-v1")
    if path is not None:
        expert.save(path)
    return expert


def vector_policy(**kw) -> ConvCfC:
    torch.manual_seed(0)
    config = PolicyConfig(n_actions=1, stack=2, obs=ObsSpec("vector", 3), action=BOX, units=8,
                          hidden=16, **kw)  # fmt: skip
    return ConvCfC(config).eval()


def test_box_shards_round_trip_and_nan_is_refused(tmp_path):
    frames = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    actions = np.linspace(-1, 1, 10, dtype=np.float32).reshape(5, 2)
    write_shard(tmp_path, "s", frames, actions, np.ones(5), [Segment(0, 0, 5)])
    _, arrays = open_shard(tmp_path / "shards" / "s")
    assert arrays["actions"].dtype == np.float32
    assert np.array_equal(arrays["frames"], frames) and np.array_equal(arrays["actions"], actions)
    bad = frames.copy()
    bad[3, 1] = np.nan
    with pytest.raises(DatasetError, match="frames holds NaN or inf"):
        write_shard(tmp_path, "t", bad, actions, np.ones(5), [Segment(0, 0, 5)])
    assert not (tmp_path / "shards" / "t").exists()
    # a NaN written behind the writer's back, with a checksum that fits: refused at load
    path = tmp_path / "shards" / "s" / "actions.npy"
    a = actions.copy()
    a[2, 0] = np.inf
    np.save(path, a)
    meta_path = tmp_path / "shards" / "s" / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["sha256"]["actions"] = sha256(path)
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match="actions holds NaN or inf .first at row 2"):
        open_shard(tmp_path / "shards" / "s")


def test_vector_policy_steps_as_it_runs_sequences_and_reads_only_its_mask():
    policy = vector_policy(obs_mask=[0, 2])
    obs = torch.randn(3, 6, 2, 3)
    out, _ = policy(obs)
    agent = StatefulAgent(policy, 3)
    start = np.ones(3, bool)
    for t in range(6):
        step = agent.step(obs[:, t].numpy().astype(np.float64), start)  # float64 is cast
        torch.testing.assert_close(step, out[:, t], rtol=1e-5, atol=1e-6)
        start[:] = False
    hidden = obs.clone()
    hidden[..., 1] = 1e3  # the masked-out dimension
    assert torch.equal(policy(hidden)[0], out)
    a = policy.actions(out * 100)
    assert a.min() >= -2 and a.max() <= 2  # within the bounds


def test_core_none_is_feedforward():
    policy = vector_policy(core="none")
    obs = torch.randn(2, 5, 2, 3)
    out, hx = policy(obs)
    alone = torch.cat([policy(obs[:, t : t + 1])[0] for t in range(5)], 1)
    torch.testing.assert_close(out, alone)
    assert hx.shape == (2, 1) and not hx.any()


def test_a_state_expert_round_trips_and_checks_its_env(tmp_path):
    expert = pendulum_expert(tmp_path / "e.safetensors")
    loaded = make_expert(str(tmp_path / "e.safetensors"), "Pendulum-v1")
    states = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    assert np.array_equal(loaded.act(states), expert.act(states))
    assert np.abs(loaded.act(states * 100)).max() <= 2.0
    with pytest.raises(ValueError, match="trained on Pendulum-v1, not CartPole-v1"):
        make_expert(str(tmp_path / "e.safetensors"), "CartPole-v1")


@pytest.mark.skipif(importlib.util.find_spec("stable_baselines3") is None, reason="no sb3")
def test_an_sb3_expert_plays_its_deterministic_actions(tmp_path):
    import gymnasium as gym
    from stable_baselines3 import TD3

    model = TD3("MlpPolicy", gym.make("Pendulum-v1"), policy_kwargs={"net_arch": [8]}, seed=0)
    model.save(tmp_path / "td3.zip")
    expert = make_expert(f"sb3:{tmp_path / 'td3.zip'}", "Pendulum-v1")
    states = np.random.default_rng(1).normal(size=(5, 3)).astype(np.float32)
    wanted, _ = model.predict(states, deterministic=True)
    np.testing.assert_allclose(expert.act(states), wanted, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="CartPole-v1 observes 4 .* another env"):
        make_expert(f"sb3:{tmp_path / 'td3.zip'}", "CartPole-v1")


@pytest.fixture(scope="module")
def pendulum_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("pendulum")
    pendulum_expert(root / "expert.safetensors")
    collect(root / "data", "Pendulum-v1", str(root / "expert.safetensors"), frames=400, envs=1,
            stack=1, progress=False)  # fmt: skip
    config = TrainConfig(data=str(root / "data"), out=str(root / "run"), epochs=2, batch=4,
                         eval_episodes=2, eval_envs=2, view_mask=[0, 1], view_stack=2,
                         policy=PolicyConfig(units=8, hidden=16), progress=False)  # fmt: skip
    config = config.__class__.from_dict({**config.to_dict(), "window": {"seq_len": 16}})
    rows = Trainer(config).fit()
    return root, rows


@pytest.mark.slow
def test_a_box_clone_trains_and_keeps_its_view(pendulum_run):
    root, rows = pendulum_run
    assert "val_mae" in rows[-1] and "val_acc" not in rows[-1]
    assert np.isfinite(rows[-1]["return_mean"])
    loaded = load_policy(root / "run" / "best.safetensors")
    assert (loaded.env_config.obs_mask, loaded.env_config.stack) == ([0, 1], 2)
    c = loaded.policy.config
    assert (c.obs.dim, c.action.kind, c.obs_mask) == (3, "box", [0, 1])
    enc = loaded.policy.conv_block
    assert enc.obs_std.shape == (2,) and not torch.equal(enc.obs_std, torch.ones(2))


@pytest.mark.slow
def test_torch_onnx_and_predict_agree_on_a_box_clone(pendulum_run, tmp_path):
    pytest.importorskip("onnxruntime")
    from cfcclone.export import OnnxAgent, export_onnx

    root, _ = pendulum_run
    loaded = load_policy(root / "run" / "best.safetensors")
    export_onnx(root / "run" / "best.safetensors", tmp_path / "p.onnx")
    env = make_vector_env(num_envs=2, config=loaded.env_config)
    torch_agent = StatefulAgent.for_env(loaded.policy, env)
    onnx_agent, state = OnnxAgent(tmp_path / "p.onnx", 2), None
    obs, _ = env.reset(seed=0)
    start = np.ones(2, bool)
    for _ in range(20):
        a = torch_agent.act(obs, start)
        np.testing.assert_allclose(onnx_agent.act(obs, start), a, rtol=1e-4, atol=1e-5)
        p, state = loaded.policy.predict(obs, state, start)
        np.testing.assert_allclose(p, a, rtol=1e-5, atol=1e-6)
        assert a.shape == (2, 1) and a.dtype == np.float32
        obs, _, term, trunc, _ = env.step(a)
        start = term | trunc


@pytest.mark.slow
def test_a_discrete_init_on_box_data_is_refused(pendulum_run, follower_data, tmp_path):
    root, _ = pendulum_run
    config = TrainConfig(data=str(follower_data), out=str(tmp_path / "x"), epochs=1,
                         init=str(root / "run" / "best.safetensors"), progress=False)  # fmt: skip
    with pytest.raises(ValueError, match=r"policy acts in Box\(1\) .* but the env or data has "):
        Trainer(config)


@pytest.mark.slow
def test_dagger_labels_box_actions_by_their_distance(pendulum_run, tmp_path):
    from cfcclone.dagger import DaggerConfig, default_recipe, run_dagger

    root, _ = pendulum_run
    init = str(root / "run" / "best.safetensors")
    recipe = default_recipe(init).__class__.from_dict(
        {**default_recipe(init).to_dict(), "epochs": 1, "eval_episodes": 0, "progress": False}
    )
    config = DaggerConfig(init=init, out=str(tmp_path / "dagger"), expert=str(root /
                          "expert.safetensors"), rounds=1, labels_per_round=200, envs=2,
                          round_eval_episodes=0, train=recipe)  # fmt: skip
    rows = run_dagger(config, progress=False)
    assert rows[0]["agreement"] is None and rows[0]["action_mae"] > 0
    assert rows[0]["labels"] == 200


def test_a_feedforward_box_policy_runs_the_same_on_onnxruntime():
    pytest.importorskip("onnxruntime")
    from cfcclone.export import OnnxAgent

    policy = vector_policy(core="none", obs_mask=[1, 2])
    onnx_agent, torch_agent = OnnxAgent.from_policy(policy, 2), StatefulAgent(policy, 2)
    obs = np.random.default_rng(0).normal(size=(4, 2, 2, 3)).astype(np.float32)
    for t in range(4):
        start = np.array([t == 0, t == 2])
        np.testing.assert_allclose(
            onnx_agent.act(obs[t], start), torch_agent.act(obs[t], start), rtol=1e-5, atol=1e-6
        )
