"""Checkpoints: exact round trips, clear errors, nothing unpickled."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from cfcclone import ConvCfC, PolicyConfig, StatefulAgent, make_vector_env
from cfcclone.checkpoint import (
    CheckpointError,
    LoadedPolicy,
    load_policy,
    read_config,
    save_policy,
)
from cfcclone.envs import EnvConfig
from cfcclone.training import OptimConfig, TrainConfig

CHECKPOINTS = Path(__file__).resolve().parents[1] / "checkpoints"


def _policy(n_actions=4, meanings=("NOOP", "FIRE", "RIGHT", "LEFT")):
    torch.manual_seed(0)
    cfg = PolicyConfig(
        n_actions=n_actions, encoder="tutorial", units=8, action_meanings=list(meanings)
    )
    policy = ConvCfC(cfg)
    policy.conv_block.bn2.running_mean.normal_()  # buffers must survive too
    return policy.eval()


def test_save_load_round_trips_exactly(tmp_path):
    policy = _policy()
    path = tmp_path / "p.safetensors"
    train = TrainConfig(data="d", out="o", optim=OptimConfig(lr=3e-4, schedule="cosine"))
    save_policy(path, policy, EnvConfig(game="breakout", sticky_actions=0.1), 7, None, train)
    loaded = load_policy(path)
    assert isinstance(loaded, LoadedPolicy) and not loaded.policy.training
    assert loaded.policy.config == policy.config
    assert loaded.env_config == EnvConfig(game="breakout", sticky_actions=0.1)
    assert loaded.train_config == train and loaded.epoch == 7
    assert not hasattr(loaded.policy, "env_config")  # nothing is attached to the module
    a, b = policy.state_dict(), loaded.policy.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    obs = torch.randint(0, 256, (2, 3, 4, 84, 84), dtype=torch.uint8)
    with torch.no_grad():
        assert torch.equal(policy(obs)[0], loaded.policy(obs)[0])
    config = read_config(path)
    assert config["epoch"] == 7 and set(config["versions"]) == {"cfcclone", "ncps", "torch"}


def test_truncated_corrupt_and_foreign_files_raise(tmp_path):
    path = tmp_path / "p.safetensors"
    save_policy(path, _policy(), EnvConfig())
    raw = path.read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CheckpointError, match="cut.safetensors"):
        load_policy(tmp_path / "cut.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="junk.safetensors: not a readable safetensors"):
        load_policy(tmp_path / "junk.safetensors")
    save_file({"w": torch.zeros(2)}, tmp_path / "foreign.safetensors", metadata={"a": "b"})
    with pytest.raises(CheckpointError, match="without cfcclone metadata"):
        load_policy(tmp_path / "foreign.safetensors")
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_policy(tmp_path / "missing.safetensors")
    torch.save(_policy().state_dict(), tmp_path / "pickle.safetensors")  # a pickle in disguise
    with pytest.raises(CheckpointError, match="pickle.safetensors"):
        load_policy(tmp_path / "pickle.safetensors")


def test_weights_that_do_not_fit_the_config_raise(tmp_path):
    path = tmp_path / "p.safetensors"
    save_policy(path, _policy(), EnvConfig())
    config = read_config(path)
    config["policy"]["units"] = 16
    tensors = {k: v for k, v in _policy().state_dict().items()}
    save_file(tensors, tmp_path / "bad.safetensors", metadata={"cfcclone": json.dumps(config)})
    with pytest.raises(CheckpointError, match="weights do not fit the stored config"):
        load_policy(tmp_path / "bad.safetensors")


def test_six_action_checkpoint_in_a_four_action_env_raises(tmp_path):
    path = tmp_path / "pong.safetensors"
    meanings = ["NOOP", "FIRE", "RIGHT", "LEFT", "RIGHTFIRE", "LEFTFIRE"]
    save_policy(path, _policy(6, meanings), EnvConfig(game="pong"))
    with pytest.raises(ValueError, match=r"policy has 6 actions but the env has 4"):
        StatefulAgent.for_env(load_policy(path).policy, make_vector_env("breakout", 2))


def _actions_played(policy, game: str, steps: int, max_episode_frames: int) -> set:
    """The actions a StatefulAgent of `policy` plays over `steps` steps of 2 envs of `game`."""
    import numpy as np

    env = make_vector_env(game, 2, max_episode_frames=max_episode_frames)
    agent = StatefulAgent.for_env(policy, env)
    obs, info = env.reset(seed=0)
    start, played = np.ones(2, bool), set()
    for _ in range(steps):
        actions = agent.act(obs, start, info)  # info: the previous action, where it is read
        played |= set(actions.tolist())
        obs, _, term, trunc, info = env.step(actions)
        start = term | trunc
    env.close()
    return played


def test_the_shipped_checkpoint_loads_strictly_and_plays_breakout():
    loaded = load_policy(CHECKPOINTS / "breakout_nature.safetensors")
    assert loaded.env_config == EnvConfig(game="breakout")  # the env defaults: what play uses
    assert loaded.train_config is None  # saved before checkpoints held their TrainConfig
    policy = loaded.policy
    assert policy.config.encoder == "nature" and not policy.training
    assert {2, 3} <= _actions_played(policy, "breakout", 60, 400)  # it moves the paddle both ways


def test_the_shipped_tutorial_checkpoint_is_the_tutorial_model_and_recipe():
    loaded = load_policy(CHECKPOINTS / "breakout_tutorial.safetensors")
    assert loaded.env_config == EnvConfig(game="breakout")
    policy, train = loaded.policy, loaded.train_config
    assert policy.config.encoder == "tutorial" and not policy.config.skip_head
    assert sum(p.numel() for p in policy.parameters()) == 1_515_716  # the tutorial's ConvCfC
    assert (train.optim.lr, train.optim.schedule, train.optim.class_weights) == (
        1e-4,
        "constant",
        "none",
    )
    assert (train.window.seq_len, train.window.horizon, train.batch) == (32, "zero", 32)
    assert loaded.meta["metrics"]["val_acc"] >= 0.92  # what checkpoints/README.md states


def test_the_shipped_planner_checkpoint_keeps_its_truncated_bptt_dagger_recipe():
    loaded = load_policy(CHECKPOINTS / "breakout_planner_nature.safetensors")
    assert loaded.env_config == EnvConfig(game="breakout")
    policy, train = loaded.policy, loaded.train_config
    assert policy.config.encoder == "nature" and policy.config.skip_head
    assert (train.optim.lr, train.optim.schedule, train.optim.class_weights) == (
        3e-4,
        "cosine",
        "sqrt",
    )
    assert (train.window.seq_len, train.window.horizon, train.batch, train.epochs) == (
        16,
        "stored",
        16,
        2,
    )
    assert train.seed == 3  # checkpoints/README.md's command


def test_the_shipped_pong_checkpoint_reads_its_previous_action_and_plays_pong():
    loaded = load_policy(CHECKPOINTS / "pong_planner_nature.safetensors")
    assert loaded.env_config == EnvConfig(game="pong")  # `cfcclone eval CKPT` plays pong
    policy, train = loaded.policy, loaded.train_config
    assert policy.config.encoder == "nature" and policy.config.skip_head
    assert policy.config.prev_action
    assert policy.config.action_meanings[2:4] == ["RIGHT", "LEFT"]
    # checkpoints/README.md's recipe: a pass over the aggregate a round, no class weights
    assert (train.optim.lr, train.optim.schedule, train.optim.class_weights) == (
        3e-4,
        "cosine",
        "none",
    )
    assert (train.batches_per_epoch, train.epochs, train.window.seq_len) == (0, 1, 16)
    assert {2, 3} <= _actions_played(policy, "pong", 300, 2000)  # it moves the paddle both ways


@pytest.mark.parametrize(
    "change, why",
    [
        (lambda c: c.pop("policy"), "policy: expected a JSON object"),
        (lambda c: c.pop("env"), "env: expected a JSON object"),
        (lambda c: c["policy"].pop("n_actions"), "expected 0 action meanings, got 4"),
        (lambda c: c["policy"].update(units="64"), "policy.units: expected int, got '64'"),
        (lambda c: c["policy"].update(units=0), "expected units >= 1, got 0"),
        (lambda c: c["env"].update(stack=0), "expected stack >= 1, got 0"),
        (lambda c: c["env"].update(sticky_actions=2.0), "expected sticky_actions in"),
        (lambda c: c["env"].update(colour=True), r"env: unknown fields \['colour'\]"),
        (lambda c: c.update(train={"optim": {"lr": -1}}), "expected lr >= 0, got -1"),
    ],
)
def test_bad_stored_configs_raise_the_checkpoint_error(tmp_path, change, why):
    path = tmp_path / "p.safetensors"
    save_policy(path, _policy(), EnvConfig())
    config = read_config(path)
    change(config)
    tensors = dict(_policy().state_dict())
    save_file(tensors, tmp_path / "bad.safetensors", metadata={"cfcclone": json.dumps(config)})
    with pytest.raises(CheckpointError, match=f"bad.safetensors: bad stored config.*{why}"):
        load_policy(tmp_path / "bad.safetensors")


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, view, first_return",
    [
        ("hopper_cfc", (1, None), 3233.69),
        ("hopper_positions_cfc", (2, [0, 1, 2, 3, 4]), 3042.97),
    ],
)
def test_the_shipped_hopper_clones_keep_their_view_and_replay_their_first_episode(
    name, view, first_return
):
    """checkpoints/README.md's evaluation (30 episodes, seed 1, onnxruntime) began with this
    episode; the clone replays it, with the view it was trained on."""
    pytest.importorskip("mujoco")
    pytest.importorskip("onnxruntime")
    from cfcclone.evaluation import evaluate_policy

    loaded = load_policy(CHECKPOINTS / f"{name}.safetensors")
    assert (loaded.env_config.stack, loaded.env_config.obs_mask) == view
    assert loaded.policy.config.action.kind == "box"
    result = evaluate_policy(loaded.policy, loaded.env_config, 1, 1, seed=1, runtime="onnx")
    assert result.returns[0] == pytest.approx(first_return, abs=0.01)


GOLDEN = sorted((CHECKPOINTS / "golden").glob("*.npz"))


def test_every_shipped_policy_has_golden_outputs():
    policies = {p.stem for p in CHECKPOINTS.glob("*.safetensors")} - {"hopper_expert"}
    assert {g.stem for g in GOLDEN} == policies  # scripts/golden_outputs.py writes a new one


@pytest.mark.parametrize("golden", GOLDEN, ids=lambda p: p.stem)
def test_each_shipped_checkpoint_gives_its_golden_outputs(golden):
    """Its outputs on 16 steps it played (scripts/golden_outputs.py), from a zero state: a
    changed file, loader or model shows here, whatever run the checkpoint came from."""
    import numpy as np

    policy = load_policy(CHECKPOINTS / f"{golden.stem}.safetensors").policy
    with np.load(golden, allow_pickle=False) as f:
        arrays = dict(f)
    obs, start, prev = (torch.as_tensor(arrays[k])[None] for k in
                        ("obs", "episode_start", "prev_action"))  # fmt: skip
    with torch.no_grad():
        out = policy(obs, None, start, prev)[0][0].numpy()
    np.testing.assert_allclose(out, arrays["out"], rtol=0, atol=1e-4)
    if not policy.config.action.is_box:
        assert (out.argmax(-1) == arrays["out"].argmax(-1)).all()
