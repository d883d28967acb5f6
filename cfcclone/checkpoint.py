"""Checkpoints: weights in one .safetensors file, the config to rebuild them in its metadata.

Nothing is ever unpickled. The metadata key "cfcclone" holds JSON: the PolicyConfig, the
EnvConfig of the game the policy was trained on, the versions of cfcclone, ncps and torch,
and the epoch. `load_policy` rebuilds the policy from that config, loads the weights strictly
and returns it in eval mode. Every write goes to a temporary file renamed into place.
"""

from __future__ import annotations

import json
import os
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=metadata)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a checkpoint is meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_policy(
    path: str | Path,
    policy: ConvCfC,
    env_config: EnvConfig,
    epoch: int | None = None,
    extra: dict | None = None,
) -> None:
    """Write the policy's weights and everything needed to rebuild and run it."""
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "policy": policy.config.to_dict(),
        "env": env_config.to_dict(),
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
    if config.get("format") != FORMAT or config.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: expected format {FORMAT} v{FORMAT_VERSION}, "
            f"got {config.get('format')} v{config.get('format_version')}"
        )
    return config


def load_policy(path: str | Path, device: str | torch.device = "cpu") -> ConvCfC:
    """Rebuild a ConvCfC from a checkpoint: strict loading, eval mode, on `device`.
    Its EnvConfig is at `policy.env_config`, the whole stored config at `policy.checkpoint`."""
    config = read_config(path)
    policy = ConvCfC(PolicyConfig.from_dict(config["policy"]))
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: corrupt weights ({e})") from None
    try:
        policy.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not fit the stored config ({e})") from None
    policy.env_config = EnvConfig.from_dict(config["env"])
    policy.checkpoint = config
    return policy.to(device).eval()


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
    model.load_state_dict(weights, strict=True)
    per_param: dict[int, dict] = {}
    optim = [(k[len("optim/") :], v) for k, v in tensors.items() if k.startswith("optim/")]
    for key, value in [*optim, *meta["scalars"].items()]:
        idx, name = key.split(".", 1)
        per_param.setdefault(int(idx), {})[name] = value
    optimizer.load_state_dict({"state": per_param, "param_groups": meta["param_groups"]})
    return meta["state"]
