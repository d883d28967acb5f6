"""Experts: actors that play N envs for collection, labelling (DAgger) and comparison.

Every expert meets `cfcclone.rollout.Actor`: `act(obs (N, 4, 84, 84) uint8, episode_start (N,)
bool, info) -> (N,) int64`, where `info["ram"]` is (N, 128) uint8 on RAM envs and
`episode_start` marks each env's first step of an episode (reset per-env memory there).
`make_expert` builds one from a name:

- "planner" (alias "scripted"): the RAM planner for breakout or pong (`experts.planner`), or
  the state-feedback rule of CartPole-v1 (`experts.cartpole`);
- "tracker": the Breakout ball tracker, made to be cloned (`experts.tracking`);
- a cfcclone checkpoint path (`*.safetensors`): a greedy StatefulAgent, for distillation; or
  a state expert's file (`experts.mlp.MLPExpert`, e.g. checkpoints/hopper_expert.safetensors),
  which reads the env's full state;
- "sb3:PATH.zip": a Stable-Baselines3 TD3/SAC/TQC/DDPG file (the 'sb3' extra), converted in
  memory to an MLPExpert. SB3's loader unpickles parts of the file, so it runs code from it:
  name only files you trust, as with module:function;
- "module:function", or a Python callable `(obs (4, 84, 84), info) -> action` called once per
  env (`experts.follower.follow_ball` is an example).
"""

from __future__ import annotations

import importlib
import os
import sys

import numpy as np

ALIASES = {"scripted": "planner"}
"""Old names that keep working."""
RAM_EXPERTS = ("planner", "tracker")


class CallableExpert:
    """Wraps `fn(obs, info) -> action` for one env into the batched Actor interface."""

    def __init__(self, fn, name: str | None = None):
        self.fn = fn
        self.name = name or getattr(fn, "__qualname__", repr(fn))

    def act(self, obs: np.ndarray, episode_start: np.ndarray, info: dict) -> np.ndarray:
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
            a = self.fn(obs[i], {k: v[i] for k, v in per_env.items()})
            if not isinstance(a, (int, np.integer)) or isinstance(a, bool):
                raise ValueError(
                    f"expert {self.name} returned {a!r} ({type(a).__name__}); "
                    "expected an integer action"
                )
            actions[i] = a
        return actions


def expert_name(spec) -> str:
    """The name a dataset records for an expert spec: "planner" for "scripted", the qualified
    name of a callable, else the spec itself."""
    if callable(spec):
        return getattr(spec, "__qualname__", repr(spec))
    return ALIASES.get(str(spec), str(spec))


def needs_ram(spec) -> bool:
    """Whether the expert reads info["ram"] (a RAM env is needed) or may be a callable that
    does; only a checkpoint plays from the frames alone."""
    return not str(spec).endswith(".safetensors")


def _ram_expert(name: str, game: str, num_envs: int):
    from cfcclone.experts.cartpole import CartPolePlanner
    from cfcclone.experts.planner import PLANNERS
    from cfcclone.experts.tracking import BreakoutTracker

    if name == "planner" and game == CartPolePlanner.game:
        return CartPolePlanner(num_envs)
    if name == "planner":
        if game not in PLANNERS:
            known = sorted([*PLANNERS, CartPolePlanner.game])
            raise ValueError(f"no planner for {game!r}; planners exist for {known}")
        return PLANNERS[game](num_envs)
    if game != BreakoutTracker.game:
        raise ValueError(f"the tracker expert plays breakout, not {game!r}")
    return BreakoutTracker(num_envs)


def make_expert(spec, game: str, num_envs: int = 1, device: str = "cpu"):
    """An Actor from "planner", "tracker", a checkpoint path, "module:function" or a callable."""
    if callable(spec):
        return CallableExpert(spec)
    name = expert_name(spec)
    if name in RAM_EXPERTS:
        return _ram_expert(name, game, num_envs)
    if name.startswith("sb3:"):
        from cfcclone.experts.mlp import expert_from_sb3

        return _state_expert(expert_from_sb3(name[4:]), game)  # SB3 files name no env
    if name.endswith(".safetensors"):
        from cfcclone.experts.mlp import MLPExpert, is_expert_file

        if is_expert_file(name):
            return _state_expert(MLPExpert.load(name), game)
        from cfcclone.agent import StatefulAgent
        from cfcclone.checkpoint import load_policy

        loaded = load_policy(name, device)
        if loaded.env_config.game != game:
            raise ValueError(f"checkpoint {name} plays {loaded.env_config.game!r}, not {game!r}")
        return StatefulAgent(loaded.policy, num_envs, device)
    if ":" in name:
        module, _, attr = name.partition(":")
        if os.getcwd() not in sys.path:  # as `python -m` does: modules beside the user count
            sys.path.insert(0, os.getcwd())
        try:
            fn = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as e:
            raise ValueError(f"cannot import expert {name!r}: {e}") from None
        return CallableExpert(fn, name=name)
    raise ValueError(
        f"unknown expert {name!r}; expected 'planner', 'tracker', a checkpoint path ending in "
        "'.safetensors', 'sb3:PATH.zip' or 'module:function'"
    )


def _state_expert(expert, game: str):
    """`expert` (an MLPExpert) where it was made for `game` and fits its state."""
    from cfcclone.envs import EnvConfig, env_specs

    if expert.env_id and expert.env_id != game:
        raise ValueError(f"the expert was trained on {expert.env_id}, not {game}")
    obs, action, meanings = env_specs(EnvConfig(game=game))
    bounds = (expert.low.tolist(), expert.high.tolist())
    if (obs.dim, action.low, action.high) != (expert.sizes[0], *bounds):
        raise ValueError(
            f"the expert reads {expert.sizes[0]} numbers and acts in Box({expert.sizes[-1]}) "
            f"in [{min(bounds[0]):g}, {max(bounds[1]):g}]; {game} observes {obs.dim} and acts "
            f"in {action.describe(meanings)}: is the expert of another env?"
        )
    return expert
