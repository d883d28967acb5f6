"""The runtime of a policy's agent: torch's `StatefulAgent`, or the same step exported in
memory to onnxruntime (`OnnxAgent`). It sits above both agents, so neither imports the other."""

from __future__ import annotations

import importlib.util
from typing import Literal

from cfcclone.agent import StatefulAgent
from cfcclone.device import resolve_device
from cfcclone.export import OnnxAgent
from cfcclone.models import ConvCfC

Runtime = Literal["auto", "torch", "onnx"]


def onnx_available() -> bool:
    """Whether onnxruntime is installed (the 'export' extra)."""
    return importlib.util.find_spec("onnxruntime") is not None


def pick_runtime(runtime: str, policy, device) -> str:
    """torch or onnx for `policy` on `device`: auto is onnx on the CPU where onnxruntime is
    installed and the policy's encoder is fp32, else torch; an onnx that cannot run is a
    ValueError naming why."""
    device = resolve_device(device)
    if runtime not in ("auto", "torch", "onnx"):
        raise ValueError(f"unknown runtime {runtime!r}; expected auto, torch or onnx")
    if runtime == "auto":
        fits = device.type == "cpu" and not policy.bf16 and onnx_available()
        return "onnx" if fits else "torch"
    if runtime == "onnx":
        if device.type != "cpu":
            raise ValueError(f"runtime onnx runs on the CPU, not {device}; use runtime torch")
        if policy.bf16:
            raise ValueError("a bf16 encoder runs on the torch runtime; drop --bf16 for onnx")
        if not onnx_available():
            raise ValueError("runtime onnx needs onnxruntime: pip install 'cfcclone[export]'")
    return runtime


def make_agent(policy: ConvCfC, num_envs: int, device="cpu", runtime: Runtime = "auto"):
    """The Actor that plays `policy` greedily in N envs: a StatefulAgent (runtime torch) or an
    OnnxAgent of the same step exported in memory (onnx; see `pick_runtime` for auto). Both
    key the recurrent state by env id and reset it per env at episode starts."""
    if pick_runtime(runtime, policy, device) == "torch":
        return StatefulAgent(policy, num_envs, device)
    return OnnxAgent.from_policy(policy, num_envs)
