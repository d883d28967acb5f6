"""ONNX export of the recurrent step, onnxruntime's agent, and SB3-style `predict`."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from cfcclone import ConvCfC, PolicyConfig, StatefulAgent, make_vector_env
from cfcclone.agent import previous_actions
from cfcclone.checkpoint import save_policy
from cfcclone.cli import main
from cfcclone.envs import EnvConfig
from cfcclone.rollout import rollout

pytest.importorskip("onnxruntime")
from cfcclone.export import ExportError, OnnxAgent, export_onnx  # noqa: E402

SHORT = EnvConfig(max_episode_frames=400)  # about 100 steps: 4 envs reset at different steps
MEANINGS = ["NOOP", "FIRE", "RIGHT", "LEFT"]


def _checkpoint(tmp_path, **policy) -> Path:
    torch.manual_seed(0)
    config = PolicyConfig(**{"n_actions": 4, "units": 8, "action_meanings": MEANINGS, **policy})
    model = ConvCfC(config).eval()
    for m in model.modules():  # BatchNorm statistics that are not the identity
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    path = tmp_path / "p.safetensors"
    save_policy(path, model, SHORT)
    return path


class Both:
    """An Actor that steps the torch agent and the ONNX agent on the same inputs, checks that
    their logits agree, and plays the torch agent's greedy actions."""

    def __init__(self, agent, runtime):
        self.agent, self.runtime, self.steps = agent, runtime, 0

    def act(self, obs, episode_start, info):
        prev = previous_actions(self.agent.config, info, episode_start)
        ours = self.agent.step(obs, episode_start, None, prev).numpy()
        theirs = self.runtime.logits(obs, episode_start, None, prev)
        np.testing.assert_allclose(theirs, ours, atol=1e-4, rtol=0)
        assert (theirs.argmax(-1) == ours.argmax(-1)).all()
        self.steps += 1
        return ours.argmax(-1)


@pytest.mark.parametrize(
    "policy",
    [
        dict(encoder="tutorial"),
        dict(encoder="nature"),
        dict(encoder="impala"),
        dict(encoder="nature", mixed_memory=True),
        dict(encoder="nature", mode="pure"),
        dict(encoder="nature", mode="no_gate", backbone_units=32, backbone_layers=2),
        dict(encoder="nature", skip_head=True),
        dict(encoder="nature", skip_head=True, prev_action=True),
        dict(encoder="nature", wiring="autoncp", features=16),
        dict(encoder="nature", wiring="ncp", units=10, ncp=[4, 2, 3, 2, 2, 2]),
        dict(encoder="nature", core="ltc"),
        dict(encoder="nature", core="ltc", wiring="autoncp", mixed_memory=True),
    ],
    ids=[
        "tutorial",
        "nature",
        "impala",
        "mixed",
        "pure",
        "no_gate",
        "skip_head",
        "prev_action",
        "autoncp",
        "ncp",
        "ltc",
        "ltc_autoncp_mixed",
    ],  # fmt: skip
)
def test_onnx_steps_equal_torch_over_a_rollout_with_resets(tmp_path, policy):
    path = _checkpoint(tmp_path, **policy)
    onnx = export_onnx(path, tmp_path / "p.onnx")
    from cfcclone import load_policy

    loaded = load_policy(path)
    env = make_vector_env(num_envs=4, config=SHORT, ram=True)  # no-op starts count: resets vary
    both = Both(StatefulAgent(loaded.policy, 4), OnnxAgent(onnx, 4))
    steps = 300
    resets = set()
    for i, t in enumerate(rollout(env, both, seed=1)):
        resets |= {i for e in np.flatnonzero(t.episode_start) if i}
        if i == steps:
            break
    env.close()
    assert both.steps == steps + 1 and len(resets) >= 2  # the envs reset at different steps


def test_export_then_eval_gives_the_checkpoints_returns(tmp_path, capsys):
    path = _checkpoint(tmp_path, encoder="nature")
    assert main(["export", str(path), "--out", str(tmp_path / "p.onnx")]) == 0
    import json

    returns = []
    runs = [(path, "torch"), (path, "onnx"), (path, "auto"), (tmp_path / "p.onnx", None)]
    for k, (target, runtime) in enumerate(runs):
        out = tmp_path / f"{k}.json"
        args = ["eval", str(target), "--episodes", "4", "--envs", "2", "--json", str(out)]
        assert main(args + (["--runtime", runtime] if runtime else [])) == 0
        returns.append(json.loads(out.read_text())["returns"])
    assert returns[0] == returns[1] == returns[2] == returns[3]
    assert (
        main(
            [
                "play",
                str(tmp_path / "p.onnx"),
                "--record",
                str(tmp_path / "a.gif"),
                "--max-steps",
                "20",
            ]
        )
        == 0
    )
    assert "ms p50" in capsys.readouterr().out


@pytest.mark.slow
def test_the_shipped_checkpoint_and_its_export_score_the_same(tmp_path):
    from cfcclone import load_policy
    from cfcclone.evaluation import evaluate_actor, evaluate_policy

    shipped = Path(__file__).resolve().parents[1] / "checkpoints" / "breakout_nature.safetensors"
    onnx = export_onnx(shipped, tmp_path / "b.onnx")
    loaded = load_policy(shipped)
    env = loaded.env_config
    ours = evaluate_policy(loaded.policy, env, 4, 4, seed=0, runtime="torch")  # full games
    theirs = evaluate_actor(lambda n: OnnxAgent(onnx, n), env, 4, 4, 0, False)
    in_memory = evaluate_policy(loaded.policy, env, 4, 4, seed=0, runtime="onnx")
    assert ours.returns == theirs.returns == in_memory.returns
    assert ours.lengths == theirs.lengths == in_memory.lengths


@pytest.mark.parametrize(
    "mixed, prev, cell",
    [(False, False, {}), (True, False, {}), (False, True, {}),
     (False, False, dict(core="ltc", wiring="autoncp")), (True, True, dict(wiring="autoncp"))],
    ids=["cfc", "mixed", "prev", "ltc_autoncp", "autoncp_mixed_prev"],
)  # fmt: skip
def test_predict_with_the_state_passed_back_equals_the_agent(tmp_path, mixed, prev, cell):
    torch.manual_seed(0)
    config = PolicyConfig(n_actions=4, encoder="nature", units=8, mixed_memory=mixed, **cell)
    policy = ConvCfC(dataclasses.replace(config, prev_action=prev)).eval()
    env = make_vector_env(num_envs=3, config=SHORT)
    agent, state, seen = StatefulAgent(policy, 3), None, 0
    for i, t in enumerate(rollout(env, agent, seed=2)):
        last = previous_actions(policy.config, t.info, t.episode_start)  # None without prev
        actions, state = policy.predict(t.obs, state, t.episode_start, prev_action=last)
        assert (actions == t.actions).all()
        assert isinstance(state, tuple) == mixed
        seen += int(t.episode_start[1:].any()) if i else 0
        if i == 250:
            break
    env.close()
    assert seen >= 1  # resets happened inside the rollout
    one, _ = policy.predict(t.obs[0], prev_action=-1 if prev else None)  # a fresh state
    assert isinstance(one, np.integer)


def test_bad_onnx_files_are_named(tmp_path):
    path = export_onnx(_checkpoint(tmp_path, encoder="nature"), tmp_path / "p.onnx")
    raw = path.read_bytes()
    (tmp_path / "cut.onnx").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ExportError, match="cut.onnx: not a readable ONNX model"):
        OnnxAgent(tmp_path / "cut.onnx", 1)
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    onnx.save(helper.make_model(graph), tmp_path / "foreign.onnx")
    with pytest.raises(ExportError, match="foreign.onnx: an ONNX model without cfcclone metadata"):
        OnnxAgent(tmp_path / "foreign.onnx", 1)
    model = onnx.load(tmp_path / "foreign.onnx")
    entry = model.metadata_props.add()
    entry.key, entry.value = "cfcclone", onnx.load(path).metadata_props[0].value
    onnx.save(model, tmp_path / "shape.onnx")
    with pytest.raises(ExportError, match=r"shape.onnx: expected inputs \['obs', 'state'"):
        OnnxAgent(tmp_path / "shape.onnx", 1)
    with pytest.raises(ExportError, match="no such ONNX file"):
        OnnxAgent(tmp_path / "none.onnx", 1)
    with pytest.raises(ExportError, match="expected an .onnx path"):
        export_onnx(tmp_path / "p.safetensors", tmp_path / "p.txt")


def test_the_in_memory_onnx_agent_keys_its_state_by_env_id_like_the_torch_agent(tmp_path):
    from cfcclone import load_policy
    from cfcclone.runtime import make_agent

    loaded = load_policy(_checkpoint(tmp_path, encoder="nature"))
    torch_agent = make_agent(loaded.policy, 6, runtime="torch")
    onnx_agent = make_agent(loaded.policy, 6, runtime="onnx")
    assert isinstance(torch_agent, StatefulAgent) and isinstance(onnx_agent, OnnxAgent)
    assert onnx_agent.config == loaded.policy.config
    rng = np.random.default_rng(0)
    for step in range(12):  # batches of 3 envs in turn, as asynchronous groups return them
        ids = np.arange(3) + 3 * (step % 2)
        obs = rng.integers(0, 256, (3, 4, 84, 84), dtype=np.uint8)
        start = rng.random(3) < 0.2 if step > 1 else np.ones(3, bool)
        ours = torch_agent.step(obs, start, ids).numpy()
        theirs = onnx_agent.logits(obs, start, ids)
        np.testing.assert_allclose(theirs, ours, atol=1e-4, rtol=0)
    assert loaded.policy.bf16 is False and not loaded.policy.training  # export left it as it was


def test_auto_runtime_is_onnx_on_the_cpu_and_torch_where_onnx_cannot_run(tmp_path):
    from cfcclone import load_policy
    from cfcclone.runtime import pick_runtime

    policy = load_policy(_checkpoint(tmp_path, encoder="nature")).policy
    assert pick_runtime("auto", policy, "cpu") == "onnx"
    assert pick_runtime("torch", policy, "cpu") == "torch"
    policy.use_bf16(True)
    assert pick_runtime("auto", policy, "cpu") == "torch"  # bf16 is torch's
    with pytest.raises(ValueError, match="a bf16 encoder runs on the torch runtime"):
        pick_runtime("onnx", policy, "cpu")
    with pytest.raises(ValueError, match="unknown runtime 'tensorrt'"):
        pick_runtime("tensorrt", policy, "cpu")
    if torch.cuda.is_available():
        policy.use_bf16(False)
        assert pick_runtime("auto", policy, "cuda") == "torch"
        with pytest.raises(ValueError, match="runtime onnx runs on the CPU"):
            pick_runtime("onnx", policy, "cuda")


def test_an_onnx_file_whose_metadata_and_graph_disagree_is_refused(tmp_path):
    import json

    import onnx

    from cfcclone import load_policy
    from cfcclone.checkpoint import CheckpointError

    path = export_onnx(_checkpoint(tmp_path, encoder="nature"), tmp_path / "p.onnx")
    model = onnx.load(path)
    meta = json.loads(model.metadata_props[0].value)
    meta["policy"]["n_actions"], meta["policy"]["action_meanings"] = 6, MEANINGS + ["UP", "DOWN"]
    model.metadata_props[0].value = json.dumps(meta)
    onnx.save(model, tmp_path / "six.onnx")
    with pytest.raises(ExportError, match="six.onnx: its metadata says 6 actions, but its graph"):
        OnnxAgent(tmp_path / "six.onnx", 1)
    with pytest.raises(CheckpointError, match="p.onnx: an ONNX file, not a checkpoint"):
        load_policy(path)


def test_predict_names_each_bad_input(tmp_path):
    from cfcclone import load_policy

    policy = load_policy(_checkpoint(tmp_path, encoder="nature", prev_action=True)).policy
    obs, start = np.zeros((2, 4, 84, 84), np.uint8), np.ones(2, bool)
    _, state = policy.predict(obs, None, start, prev_action=[-1, -1])
    good = dict(observation=obs, state=state, episode_start=start, prev_action=[0, 3])
    for change, message in [
        (dict(observation=obs[:, :, :80]), r"expected obs \(N, 4, 84, 84\) uint8, got \(2, 4, 80"),
        (dict(state=state[:, :5]), r"expected a state of shape \(2, 8\) .* got \(2, 5\)"),
        (dict(episode_start=np.ones(3, bool)), r"expected episode_start \(2,\) bool"),
        (dict(prev_action=[0, 4]), r"expected prev_action in \[-1, 4\) \(-1: none\), got \[0, 4\]"),
        (dict(prev_action=[0.5, 1.0]), r"expected prev_action \(2,\) int, got \(2,\) float64"),
    ]:
        with pytest.raises(ValueError, match=message):
            policy.predict(**{**good, **change})
    # numpy's float64 state (the default dtype) is accepted, as a cast
    a, _ = policy.predict(**{**good, "state": state.astype(np.float64)})
    b, _ = policy.predict(**good)
    assert np.array_equal(a, b)
