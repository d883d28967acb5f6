"""ONNX export of the recurrent step, onnxruntime's agent, and SB3-style `predict`."""

from pathlib import Path

import numpy as np
import pytest
import torch

from cfcclone import ConvCfC, PolicyConfig, StatefulAgent, make_vector_env
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
    config = PolicyConfig(n_actions=4, units=8, action_meanings=MEANINGS, **policy)
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
        ours = self.agent.step(obs, episode_start).numpy()
        theirs = self.runtime.logits(obs, episode_start)
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
    ],
    ids=["tutorial", "nature", "impala", "mixed", "pure", "no_gate"],
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
    for target in (path, tmp_path / "p.onnx"):
        out = tmp_path / f"{target.suffix[1:]}.json"
        args = ["eval", str(target), "--episodes", "4", "--envs", "2", "--json", str(out)]
        assert main(args) == 0
        returns.append(json.loads(out.read_text())["returns"])
    assert returns[0] == returns[1]
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
    ours = evaluate_policy(loaded.policy, loaded.env_config, 4, 4, seed=0)  # full games
    theirs = evaluate_actor(lambda n: OnnxAgent(onnx, n), loaded.env_config, 4, 4, 0, False)
    assert ours.returns == theirs.returns and ours.lengths == theirs.lengths


@pytest.mark.parametrize("mixed", [False, True])
def test_predict_with_the_state_passed_back_equals_the_agent(tmp_path, mixed):
    torch.manual_seed(0)
    policy = ConvCfC(PolicyConfig(n_actions=4, encoder="nature", units=8, mixed_memory=mixed))
    policy.eval()
    env = make_vector_env(num_envs=3, config=SHORT)
    agent, state, seen = StatefulAgent(policy, 3), None, 0
    for i, t in enumerate(rollout(env, agent, seed=2)):
        actions, state = policy.predict(t.obs, state, t.episode_start)
        assert (actions == t.actions).all()
        assert isinstance(state, tuple) == mixed
        seen += int(t.episode_start[1:].any()) if i else 0
        if i == 250:
            break
    env.close()
    assert seen >= 1  # resets happened inside the rollout
    one, _ = policy.predict(t.obs[0])  # one observation: one action, a fresh state
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
