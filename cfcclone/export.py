"""ONNX export of the recurrent step, and the agent that runs it outside PyTorch.

The exported graph is one closed-loop step of a ConvCfC for N envs, with the recurrent state
explicit, as TorchRL's ONNX policies and SB3-contrib's `predict` have it:

    inputs   obs (N, 4, 84, 84) uint8 or (N, stack, d) float32 (the full state: a mask is in
             the graph), state (N, H) float32 [, cell (N, H) with mixed memory],
             episode_start (N,) bool (the state rows of those envs are zeroed first)
             [, prev_action (N,) int64 for a policy with prev_action: the action executed
             last step, -1 where none]
    outputs  logits (N, A) float32, or for a Box actions (N, A) float32 (the mean, within the
             bounds), next_state (N, H) [, next_cell (N, H)]

N is dynamic. The checkpoint's JSON (policy, env, versions) is stored in the ONNX metadata
under "cfcclone", so `OnnxAgent` knows the game and preprocessing it was trained on, and
`cfcclone eval policy.onnx` scores it exactly as the checkpoint: through the one rollout loop.
onnx and onnxruntime come with the 'export' extra.
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import numpy as np
import torch

from cfcclone.agent import step_inputs
from cfcclone.atomic import atomic_path, check_file_target
from cfcclone.checkpoint import CheckpointError, load_policy, stored_configs
from cfcclone.models import ConvCfC


class ExportError(ValueError):
    """An ONNX file is missing, unreadable, not cfcclone's, or of another shape."""


class PolicyStep(torch.nn.Module):
    """One ConvCfC step with the state explicit: (obs, state[, cell], episode_start) ->
    (logits, next_state[, next_cell]); the graph that is exported."""

    def __init__(self, policy: ConvCfC):
        super().__init__()
        self.policy = policy
        self.mixed = policy.config.mixed_memory
        self.extras = _extra_inputs(policy.config)

    def forward(self, obs, *args):
        k = len(self.extras)
        *state, start = args[: len(args) - k]
        extra = dict(zip(self.extras, (a[:, None] for a in args[len(args) - k :]), strict=True))
        hx = tuple(state) if self.mixed else state[0]
        logits, hx = self.policy(
            obs[:, None], hx, start[:, None], extra.get("prev_action"), extra.get("elapsed")
        )
        out = logits[:, 0]
        if self.policy.config.action.is_box:  # the action itself: the bounds live in the graph
            out = self.policy.actions(out)
        return (out, *hx) if self.mixed else (out, hx)


def _extra_inputs(config) -> list[str]:
    """The step's inputs after episode_start, as `cfcclone.agent.step_inputs` names them."""
    return ["prev_action"] * config.prev_action + ["elapsed"] * config.timespans


def _names(config) -> tuple[list[str], list[str]]:
    mixed = config.mixed_memory
    inputs = ["obs", "state", *(["cell"] * mixed), "episode_start", *_extra_inputs(config)]
    head = "actions" if config.action.is_box else "logits"
    outputs = [head, "next_state", *(["next_cell"] * mixed)]
    return inputs, outputs


def export_onnx(checkpoint: str | Path, out: str | Path) -> Path:
    """Write the checkpoint's policy step as an ONNX graph (see the module doc).

        from cfcclone.export import export_onnx
        export_onnx("checkpoints/breakout_nature.safetensors", "breakout.onnx")

    Args:
        checkpoint: a cfcclone checkpoint (.safetensors).
        out: the .onnx file to write.
    """
    out = check_file_target(out)
    if out.suffix != ".onnx":
        raise ExportError(f"expected an .onnx path, got {out}")
    loaded = load_policy(checkpoint)
    with atomic_path(out) as tmp:
        _export(loaded.policy, str(tmp))
        _stamp(tmp, loaded.meta)
    return out


def _export(policy: ConvCfC, f) -> None:
    """Trace `policy`'s step (fp32, eval mode) into `f`, a path or a binary file object."""
    bf16, training = policy.bf16, policy.training
    policy.use_bf16(False).eval()  # fp32: what every runtime runs
    c = policy.config
    n = 2
    obs = torch.zeros(n, *c.obs_shape, dtype=c.obs_dtype)
    device = next(policy.parameters()).device
    state = policy.initial_state(n, device)
    state = state if isinstance(state, tuple) else (state,)
    args = (obs.to(device), *state, torch.ones(n, dtype=torch.bool, device=device))
    if c.prev_action:
        args += (torch.full((n,), -1, dtype=torch.int64, device=device),)
    if c.timespans:
        args += (torch.ones(n, device=device),)
    inputs, outputs = _names(c)
    axes = {name: {0: "N"} for name in inputs + outputs}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notes
            torch.onnx.export(
                PolicyStep(policy).eval(),
                args,
                f,
                input_names=inputs,
                output_names=outputs,
                dynamic_axes=axes,
                opset_version=17,
                dynamo=False,
            )
    finally:
        policy.bf16 = bf16
        policy.train(training)


def _stamp(path: Path, meta: dict) -> None:
    import onnx

    model = onnx.load(str(path))
    entry = model.metadata_props.add()
    entry.key, entry.value = "cfcclone", json.dumps(meta)
    onnx.save(model, str(path))


def _session(model, threads: int, name):
    """An onnxruntime CPU session of `model` (a path or the graph's bytes), `threads` intra-op
    threads (0: onnxruntime's default, one per core)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise ExportError(
            "ONNX policies need onnxruntime: pip install 'cfcclone[export]'"
        ) from None
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    try:
        return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime's own exception types
        raise ExportError(f"{name}: not a readable ONNX model ({e})") from None


class OnnxAgent:
    """An exported policy as an Actor, on onnxruntime: greedy actions for N envs, the state
    kept in numpy and zeroed per env where `episode_start`. `threads`: onnxruntime's intra-op
    threads (default one, as rollouts run torch in one: the emulator's threads need the cores;
    0 is onnxruntime's default, one per core)."""

    def __init__(self, path: str | Path, num_envs: int, threads: int = 1):
        path = Path(path)
        if not path.is_file():
            raise ExportError(f"{path}: no such ONNX file")
        self.session = _session(str(path), threads, path)
        meta = self.session.get_modelmeta().custom_metadata_map
        if "cfcclone" not in meta:
            raise ExportError(
                f"{path}: an ONNX model without cfcclone metadata; export one with cfcclone export"
            )
        try:
            self.meta = json.loads(meta["cfcclone"])
            self.config, self.env_config, _ = stored_configs(path, self.meta)
        except (json.JSONDecodeError, CheckpointError) as e:
            raise ExportError(f"{path}: bad cfcclone metadata ({e})") from None
        self._check_graph(path)
        self._ready(num_envs)

    @classmethod
    def from_policy(cls, policy: ConvCfC, num_envs: int, threads: int = 1) -> OnnxAgent:
        """An agent running `policy` (a ConvCfC on the CPU) on onnxruntime, exported in memory
        (about 0.15 s): `cfcclone.runtime.make_agent`'s onnx runtime. `threads`: onnxruntime's
        intra-op threads (one, as torch's in rollouts: the emulator needs the other cores)."""
        graph = io.BytesIO()
        _export(policy, graph)
        agent = cls.__new__(cls)
        agent.session = _session(graph.getvalue(), threads, "the exported policy")
        agent.meta, agent.config, agent.env_config = {}, policy.config, None
        agent._ready(num_envs)
        return agent

    def _ready(self, num_envs: int) -> None:
        self.num_envs = num_envs
        self._inputs = [i.name for i in self.session.get_inputs()]  # not per step: the hot path
        self.reset()

    def _check_graph(self, path: Path) -> None:
        inputs, outputs = _names(self.config)
        got = (
            [i.name for i in self.session.get_inputs()],
            [o.name for o in self.session.get_outputs()],
        )
        c = self.config
        shape = self.session.get_inputs()[0].shape[1:]
        if got != (inputs, outputs) or list(shape) != list(c.obs_shape):
            raise ExportError(
                f"{path}: expected inputs {inputs} with obs (N, "
                f"{', '.join(map(str, c.obs_shape))}) and outputs {outputs}, got {got[0]} with "
                f"obs {shape} and {got[1]}"
            )
        width = self.session.get_outputs()[0].shape[-1]  # logits, or a Box's action vector
        want = c.action.dim if c.action.is_box else c.n_actions
        if width != want:
            raise ExportError(
                f"{path}: its metadata says {want} actions, but its graph outputs {width}"
            )

    @property
    def action_meanings(self) -> list[str]:
        return list(self.config.action_meanings)

    def reset(self) -> None:
        size = self.session.get_inputs()[1].shape[1]
        self.state = [
            np.zeros((self.num_envs, size), np.float32) for _ in range(1 + self.config.mixed_memory)
        ]

    def logits(
        self, obs, episode_start, env_ids=None, prev_action=None, elapsed=None
    ) -> np.ndarray:
        """(B, A) float32 (logits, or a Box's actions) for obs (B, stack, H, W) uint8 or
        (B, stack, d) float and episode_start (B,) bool of the envs `env_ids` (default: all N
        in order); the other envs' state is untouched. prev_action (B,) int, for a policy with
        `prev_action`: what each env executed last step (-1 where none); elapsed (B,) float,
        for a policy with `timespans`: the time each env's last step took (None: 1)."""
        dtype = np.uint8 if self.config.obs.kind == "image" else np.float32
        obs, start = np.ascontiguousarray(obs, dtype), np.asarray(episode_start, bool)
        rows = np.arange(self.num_envs) if env_ids is None else np.asarray(env_ids, np.int64)
        if obs.shape[0] != len(rows) or start.shape != rows.shape:
            raise ValueError(
                f"expected obs and episode_start for {len(rows)} envs, got {obs.shape} and "
                f"{start.shape}"
            )
        extra = []
        if self.config.prev_action:
            if prev_action is None:
                raise ValueError("this policy reads the previous action: pass prev_action (B,)")
            extra = [np.asarray(prev_action, np.int64).reshape(len(rows))]
        if self.config.timespans:
            times = np.ones(len(rows)) if elapsed is None else elapsed
            extra.append(np.asarray(times, np.float32).reshape(len(rows)))
        values = [obs, *(s[rows] for s in self.state), start, *extra]
        feeds = dict(zip(self._inputs, values, strict=True))
        logits, *state = self.session.run(None, feeds)
        for s, new in zip(self.state, state, strict=True):
            s[rows] = new
        return logits

    def act(self, obs, episode_start, info=None) -> np.ndarray:
        """Greedy actions (B,) int64, or a Box's (B, A) float32, for the envs
        `info["env_id"]`: the Actor protocol."""
        info = info or {}
        inputs = step_inputs(self.config, info, episode_start)
        out = self.logits(obs, episode_start, info.get("env_id"), **inputs)
        return out if self.config.action.is_box else out.argmax(-1).astype(np.int64)
