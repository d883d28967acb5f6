"""A state expert as plain weights: an MLP actor stored in safetensors with its config.

    expert.safetensors   weights "layers.<k>.weight" / "layers.<k>.bias", and under the
                         metadata key "cfcclone-expert" JSON: the env id, the layer sizes,
                         the action bounds and where it came from

The actor is Linear-ReLU-...-Linear, then tanh, then scaled from [-1, 1] to the action bounds:
the deterministic action of SB3's TD3 and SAC (their `predict(deterministic=True)`), so a
trained SB3 expert is converted once (`expert_from_sb3`, which must unpickle the SB3 file the user
names) and then plays without SB3 and without unpickling anything (`MLPExpert.load`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file

from cfcclone.atomic import atomic_path

FORMAT = "cfcclone-expert"
KEY = "cfcclone-expert"


class MLPExpert(torch.nn.Module):
    """obs (N, d) float -> actions (N, a) float32 within [low, high]; an Actor on vector envs
    whose observation it reads as the env returns it (the full state: `info["state"]` where
    the student sees a masked or rendered view)."""

    def __init__(self, sizes: list[int], low, high, env_id: str = "", meta: dict | None = None):
        super().__init__()
        self.layers = torch.nn.ModuleList(
            torch.nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True)
        )
        self.register_buffer("low", torch.as_tensor(low, dtype=torch.float32))
        self.register_buffer("high", torch.as_tensor(high, dtype=torch.float32))
        self.sizes, self.env_id, self.meta = list(sizes), env_id, dict(meta or {})

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = obs.float()
        for k, layer in enumerate(self.layers):
            x = layer(x)
            x = torch.relu(x) if k < len(self.layers) - 1 else torch.tanh(x)
        return self.low + 0.5 * (x + 1.0) * (self.high - self.low)

    @torch.inference_mode()
    def act(self, obs, episode_start=None, info=None) -> np.ndarray:
        """The Actor protocol: reads `info["state"]` where the env reports it (the full state
        behind a masked or rendered observation), else `obs`."""
        state = obs if not info or "state" not in info else info["state"]
        x = torch.as_tensor(np.asarray(state, np.float32))
        if x.dim() != 2 or x.shape[1] != self.sizes[0]:
            raise ValueError(
                f"expert {self.env_id or 'MLP'} reads states (N, {self.sizes[0]}), got "
                f"{tuple(x.shape)}; is this the env it was trained on?"
            )
        return self(x).numpy()

    def save(self, path: str | Path) -> None:
        config = {
            "format": FORMAT,
            "env_id": self.env_id,
            "sizes": self.sizes,
            "low": self.low.tolist(),
            "high": self.high.tolist(),
            **self.meta,
        }
        tensors = {k: v.detach().contiguous() for k, v in self.state_dict().items()}
        tensors = {k: v for k, v in tensors.items() if k.startswith("layers.")}
        from safetensors.torch import save_file

        with atomic_path(Path(path)) as tmp:
            save_file(tensors, tmp, metadata={KEY: json.dumps(config)})

    @classmethod
    def load(cls, path: str | Path) -> MLPExpert:
        """Rebuild from `save`'s file; a ValueError names a file that is not one."""
        path = Path(path)
        try:
            with safe_open(str(path), framework="pt") as f:
                config = json.loads((f.metadata() or {})[KEY])
            tensors = load_file(str(path))
            meta = {k: v for k, v in config.items() if k not in ("format", "sizes")}
            expert = cls(config["sizes"], config["low"], config["high"], config["env_id"], meta)
            missing, unexpected = expert.load_state_dict(tensors, strict=False)
            if unexpected or [k for k in missing if k.startswith("layers.")]:
                raise KeyError(
                    f"weights {unexpected or missing} do not fit sizes {config['sizes']}"
                )
        except (SafetensorError, OSError, KeyError, TypeError, json.JSONDecodeError) as e:
            raise ValueError(f"{path}: not a cfcclone state expert ({e})") from None
        return expert.eval()


def is_expert_file(path: str | Path) -> bool:
    """Whether `path` is a safetensors file written by `MLPExpert.save`."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return KEY in (f.metadata() or {})
    except (SafetensorError, OSError, ValueError):
        return False


def sb3_actor(path: str | Path):
    """The deterministic actor of an SB3 TD3, SAC, TQC or DDPG file as (linear layers, action
    low, action high, algorithm name). SB3 unpickles parts of its file: pass only files you
    trust, as with `module:function` experts."""
    try:
        from stable_baselines3.common.save_util import load_from_zip_file
    except ImportError:
        raise ValueError(
            "SB3 experts need stable-baselines3: pip install 'cfcclone[sb3]'"
        ) from None
    try:
        data, params, _ = load_from_zip_file(str(path), device="cpu", print_system_info=False)
    except Exception as e:  # a missing file, a zip that is not SB3's, a bad pickle
        raise ValueError(f"{path}: not a readable Stable-Baselines3 file ({e})") from None
    state = params.get("policy", {})
    space = data.get("action_space")
    prefix = next(
        (p for p in ("actor.mu.", "actor.latent_pi.") if any(k.startswith(p) for k in state)), None
    )
    if prefix is None or space is None or not hasattr(space, "low"):
        raise ValueError(
            f"{path}: expected an SB3 actor-critic with a deterministic actor (TD3, SAC, TQC, "
            f"DDPG) and a Box action space, got {type(space).__name__} and "
            f"{sorted({k.split('.')[0] for k in state})}"
        )
    if prefix == "actor.mu.":  # TD3, DDPG: mu = Sequential(Linear, ReLU, ..., Linear, Tanh)
        names = sorted({k.rsplit(".", 1)[0] for k in state if k.startswith("actor.mu.")},
                       key=lambda n: int(n.rsplit(".", 1)[1]))  # fmt: skip
    else:  # SAC, TQC: latent_pi = (Linear, ReLU) * k, then mu = Linear, then tanh
        names = sorted({k.rsplit(".", 1)[0] for k in state if k.startswith("actor.latent_pi.")},
                       key=lambda n: int(n.rsplit(".", 1)[1]))  # fmt: skip
        names.append("actor.mu")
    layers = [(state[f"{n}.weight"], state[f"{n}.bias"]) for n in names]
    policy_class = data.get("policy_class")
    return layers, space.low, space.high, getattr(policy_class, "__name__", str(policy_class))


def expert_from_sb3(path: str | Path, env_id: str = "", meta: dict | None = None) -> MLPExpert:
    """The deterministic actor of the SB3 file `path` (TD3, SAC, TQC, DDPG) as an MLPExpert,
    in memory; `save` writes it as plain weights. SB3 unpickles `path`: trust it."""
    layers, low, high, policy_class = sb3_actor(path)
    sizes = [layers[0][0].shape[1]] + [w.shape[0] for w, _ in layers]
    info = {"source": f"sb3:{Path(path).name}", "policy_class": str(policy_class), **(meta or {})}
    expert = MLPExpert(sizes, low, high, env_id, info)
    with torch.no_grad():
        for layer, (w, b) in zip(expert.layers, layers, strict=True):
            layer.weight.copy_(w)
            layer.bias.copy_(b)
    return expert.eval()
