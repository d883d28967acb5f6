"""Experts: anything that returns actions for a batch of envs.

An expert has `act(obs (N, 4, 84, 84) uint8, info, episode_start (N,) bool) -> (N,) int64`,
where `info["ram"]` is (N, 128) uint8 and `episode_start` marks each env's first step of an
episode (reset per-env memory there). Three kinds:

- "scripted": a RAM-reading expert for breakout or pong (`cfcclone.experts.scripted`);
- a cfcclone checkpoint path (`*.safetensors`), for distillation and relabeling;
- any Python callable `(obs (4, 84, 84), info) -> action`, called once per env, or its
  "module:function" name on the command line.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np


class CallableExpert:
    """Wraps `fn(obs, info) -> action` for one env into the batched expert interface."""

    def __init__(self, fn, name: str | None = None):
        self.fn = fn
        self.name = name or getattr(fn, "__qualname__", repr(fn))

    def act(self, obs: np.ndarray, info: dict, episode_start: np.ndarray) -> np.ndarray:
        actions = np.empty(len(obs), dtype=np.int64)
        # the current step's per-env arrays: a vector env's info also holds masks ("_ram")
        # and, where an episode ended, what belongs to that episode ("final_obs", "final_info")
        per_env = {
            k: v
            for k, v in info.items()
            if isinstance(v, np.ndarray)
            and len(v) == len(obs)
            and not k.startswith(("_", "final_"))
        }
        for i in range(len(obs)):
            actions[i] = int(self.fn(obs[i], {k: v[i] for k, v in per_env.items()}))
        return actions


class AgentExpert:
    """A StatefulAgent behind the expert interface; info is not used."""

    def __init__(self, agent, name: str = "policy"):
        self.agent, self.policy, self.name = agent, agent.policy, name

    def act(self, obs: np.ndarray, info: dict, episode_start: np.ndarray) -> np.ndarray:
        return self.agent.act(obs, episode_start)

    @classmethod
    def from_checkpoint(cls, path: str | Path, num_envs: int = 1, device: str = "cpu"):
        """A cfcclone checkpoint acting greedily."""
        from cfcclone.agent import StatefulAgent
        from cfcclone.checkpoint import load_policy

        return cls(StatefulAgent(load_policy(path, device), num_envs, device), str(path))


def make_expert(spec, game: str, num_envs: int = 1, device: str = "cpu"):
    """Build an expert from "scripted", a checkpoint path, "module:function" or a callable."""
    if callable(spec):
        return CallableExpert(spec)
    spec = str(spec)
    if spec == "scripted":
        from cfcclone.experts.scripted import SCRIPTED

        if game not in SCRIPTED:
            raise ValueError(
                f"no scripted expert for {game!r}; scripted experts exist for {sorted(SCRIPTED)}"
            )
        expert = SCRIPTED[game](num_envs)
        expert.name = "scripted"
        return expert
    if spec == "tracker":
        from cfcclone.experts.tracking import BreakoutTracker

        if game != BreakoutTracker.game:
            raise ValueError(f"the tracker expert plays breakout, not {game!r}")
        expert = BreakoutTracker(num_envs)
        expert.name = "tracker"
        return expert
    if spec.endswith(".safetensors"):
        expert = AgentExpert.from_checkpoint(spec, num_envs, device)
        expert_game = expert.policy.env_config.game
        if expert_game != game:
            raise ValueError(f"checkpoint {spec} plays {expert_game!r}, not {game!r}")
        return expert
    if ":" in spec:
        module, _, attr = spec.partition(":")
        try:
            fn = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as e:
            raise ValueError(f"cannot import expert {spec!r}: {e}") from None
        return CallableExpert(fn, name=spec)
    raise ValueError(
        f"unknown expert {spec!r}; expected 'scripted', a checkpoint path ending in "
        "'.safetensors', or 'module:function'"
    )
