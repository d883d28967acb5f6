"""Checkpoints: weights in one .safetensors file, the config to rebuild them in its metadata.

Nothing is ever unpickled. The metadata key "cfcclone" holds JSON: the PolicyConfig, the
EnvConfig of the game the policy was trained on, the whole TrainConfig of its run (where it
came from training), the versions of cfcclone, ncps and torch, and the epoch. `load_policy`
rebuilds the policy from that config, loads the weights strictly and returns a `LoadedPolicy`
record: the module in eval mode, its EnvConfig, its TrainConfig and the metadata. Nothing is
attached to the module. Every write goes to a temporary file renamed into place.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from cfcclone.atomic import atomic_path
from cfcclone.device import resolve_device
from cfcclone.envs import EnvConfig
from cfcclone.models import ConvCfC, PolicyConfig

FORMAT = "cfcclone-policy"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint is missing, truncated, corrupt or not cfcclone's; the message names it."""


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"


def atomic_save_tensors(path: Path, tensors: dict, metadata: dict[str, str]) -> None:
    with atomic_path(path) as tmp:
        save_file(tensors, tmp, metadata=metadata)


@dataclass
class LoadedPolicy:
    """What `load_policy` returns: the policy and everything its checkpoint says about it."""

    policy: ConvCfC
    """The module, in eval mode, on the device it was loaded to."""
    env_config: EnvConfig
    """The game and preprocessing it was trained on: what evaluation and play must use."""
    train_config: object | None
    """The TrainConfig of its run (None for checkpoints written outside training)."""
    meta: dict
    """The whole stored JSON: format, versions, epoch, metrics, ..."""
    path: Path | None = None

    @property
    def epoch(self) -> int | None:
        return self.meta.get("epoch")


def save_policy(
    path: str | Path,
    policy: ConvCfC,
    env_config: EnvConfig,
    epoch: int | None = None,
    extra: dict | None = None,
    train_config=None,
) -> None:
    """Write the policy's weights and everything needed to rebuild and run it; `train_config`
    (a TrainConfig) is stored whole, so `train --init` and `dagger` can start from it.

        save_policy("clone.safetensors", policy, EnvConfig("breakout"), epoch=10)
    """
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "policy": policy.config.to_dict(),
        "env": env_config.to_dict(),
        "train": None if train_config is None else train_config.to_dict(),
        "epoch": epoch,
        "versions": {p: _version(p) for p in ("cfcclone", "ncps", "torch")},
        **(extra or {}),
    }
    tensors = {k: v.detach().cpu().contiguous() for k, v in policy.state_dict().items()}
    atomic_save_tensors(Path(path), tensors, {"cfcclone": json.dumps(config)})


def read_config(path: str | Path) -> dict:
    """The JSON config stored in a checkpoint, without loading its weights."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if path.suffix == ".onnx":
        raise CheckpointError(
            f"{path}: an ONNX file, not a checkpoint; play it with cfcclone.export.OnnxAgent "
            "(the command line takes it where it takes a checkpoint)"
        )
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable safetensors file ({e})") from None
    if "cfcclone" not in metadata:
        raise CheckpointError(
            f"{path}: a safetensors file without cfcclone metadata; "
            "expected a checkpoint written by cfcclone (save_policy)"
        )
    try:
        config = json.loads(metadata["cfcclone"])
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: corrupt cfcclone metadata ({e})") from None
    if (
        not isinstance(config, dict)
        or config.get("format") != FORMAT
        or config.get("format_version") != FORMAT_VERSION
    ):
        got = config if not isinstance(config, dict) else config.get("format")
        raise CheckpointError(
            f"{path}: expected format {FORMAT} v{FORMAT_VERSION}, got {got!r:.80}"
        )
    return config


def stored_configs(path: Path, config: dict):
    """The PolicyConfig, EnvConfig and TrainConfig (or None) of a checkpoint's stored JSON
    (also an ONNX export's); a CheckpointError names the file and the bad field."""
    from cfcclone.training.config import TrainConfig

    try:
        policy = PolicyConfig.from_dict(config.get("policy"), "policy")
        env = EnvConfig.from_dict(config.get("env"), "env")
        train = config.get("train")
        train = None if train is None else TrainConfig.from_dict(train, "train")
    except ValueError as e:
        raise CheckpointError(f"{path}: bad stored config ({e})") from None
    if policy.n_actions < 1:
        raise CheckpointError(f"{path}: bad stored config (policy.n_actions is {policy.n_actions})")
    return policy, env, train


def load_policy(path: str | Path, device: str | torch.device = "cpu") -> LoadedPolicy:
    """Rebuild a ConvCfC from a checkpoint: strict loading, eval mode, on `device`; returns
    a LoadedPolicy (the module, its EnvConfig, its TrainConfig and the stored metadata).

        from cfcclone import StatefulAgent, load_policy, make_vector_env
        loaded = load_policy("checkpoints/breakout_nature.safetensors")
        env = make_vector_env(num_envs=8, config=loaded.env_config)   # what it was trained on
        agent = StatefulAgent.for_env(loaded.policy, env)
    """
    path, device = Path(path), resolve_device(device)
    config = read_config(path)
    policy_config, env_config, train_config = stored_configs(path, config)
    policy = ConvCfC(policy_config)
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: corrupt weights ({e})") from None
    try:
        policy.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not fit the stored config ({e})") from None
    return LoadedPolicy(policy.to(device).eval(), env_config, train_config, config, path)


def save_train_state(
    path: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict
) -> None:
    """Everything `--resume` needs, in one atomic file: the model's weights ("model/..."), the
    optimizer's tensors ("optim/<param>.<name>"), and in the metadata its param groups and the
    JSON-able `state` (epoch, RNG states, best return, ...)."""
    tensors = {f"model/{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    scalars = {}
    for idx, per_param in optimizer.state_dict()["state"].items():
        for name, value in per_param.items():
            if torch.is_tensor(value):
                tensors[f"optim/{idx}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{idx}.{name}"] = value
    meta = {
        "param_groups": optimizer.state_dict()["param_groups"],
        "scalars": scalars,
        "state": state,
    }
    atomic_save_tensors(Path(path), tensors, {"cfcclone-train-state": json.dumps(meta)})


def load_train_state(
    path: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer
) -> dict:
    """Restore model and optimizer from `path`; returns the stored JSON state."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {})["cfcclone-train-state"])
        tensors = load_file(str(path))
    except (SafetensorError, OSError, KeyError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: not a cfcclone training state ({e})") from None
    weights = {k[len("model/") :]: v for k, v in tensors.items() if k.startswith("model/")}
    per_param: dict[int, dict] = {}
    optim = [(k[len("optim/") :], v) for k, v in tensors.items() if k.startswith("optim/")]
    try:
        model.load_state_dict(weights, strict=True)
        for key, value in [*optim, *meta["scalars"].items()]:
            idx, name = key.split(".", 1)
            per_param.setdefault(int(idx), {})[name] = value
        optimizer.load_state_dict({"state": per_param, "param_groups": meta["param_groups"]})
    except (RuntimeError, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{path}: the training state does not fit this run ({e})") from None
    return meta["state"]
