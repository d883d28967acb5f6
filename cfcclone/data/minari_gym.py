"""Minari datasets of gymnasium envs (not ALE): MuJoCo's sets and the like, for
`cfcclone.data.minari_format` (whose module doc has the format).

The dataset's env id, and its kwargs where they differ from the registered ones, become the
EnvConfig (stack 1: a policy restacks with `--view-stack`); the specs come from the dataset's
spaces, which must be the env's. Its export writes the env's own spaces and EnvSpec.
"""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np

from cfcclone.data.format import DatasetError, Segment, check_finite
from cfcclone.envs import EnvConfig
from cfcclone.spaces import ObsSpec, specs_of


def gym_side(dataset, saved: dict | None = None):
    """(EnvConfig, ObsSpec, ActionSpec, action meanings) of a Minari dataset of a gymnasium
    env (not ALE); DatasetError where its env or its spaces are not ones cfcclone replays."""
    from cfcclone.gym_env import gym_specs

    spec = dataset.spec.env_spec
    if spec is None:
        raise DatasetError("the dataset has no env spec, so its env is unknown")
    if spec.additional_wrappers:
        names = [w.name for w in spec.additional_wrappers]
        raise DatasetError(f"env {spec.id} has wrappers cfcclone cannot replay: {names}")
    try:
        registered = gym.spec(spec.id)
    except gym.error.Error as e:
        raise DatasetError(f"env {spec.id} is not a registered gymnasium env ({e})") from None
    kwargs = {k: v for k, v in spec.kwargs.items()
              if registered.kwargs.get(k, ...) != v and k != "render_mode"}  # fmt: skip
    if spec.max_episode_steps != registered.max_episode_steps:
        kwargs["max_episode_steps"] = spec.max_episode_steps
    env = EnvConfig(game=spec.id, stack=1, env_kwargs=kwargs or None)
    if saved is not None:  # ours: it also knows the stack, the mask, pixels
        ours = EnvConfig.from_dict(saved, "metadata cfcclone.env")
        if (ours.game, ours.env_kwargs) != (env.game, env.env_kwargs):
            raise DatasetError(f"its metadata's EnvConfig {ours} disagrees with its env spec")
        env = ours
    pixels = len(dataset.observation_space.shape) == 2 and env.pixels
    obs, action = specs_of(dataset.observation_space, dataset.action_space, pixels)
    env_obs, env_action, meanings = gym_specs(env)
    if (obs, action) != (env_obs, env_action):
        raise DatasetError(
            f"its spaces ({dataset.observation_space}, {dataset.action_space}) are not "
            f"{spec.id}'s ({env_obs}, {env_action.describe(meanings)})"
        )
    return env, obs, action, meanings


def gym_episode(item, obs_spec: ObsSpec, where: str):
    """A gymnasium episode's observations (T, d) float32 or (T, S, S) uint8, actions, rewards
    and segment; DatasetError naming the episode where a value is NaN or inf."""
    episode, seed = item
    steps = len(episode.actions)
    obs = np.asarray(episode.observations)[:steps].astype(obs_spec.dtype, copy=False)
    actions = np.asarray(episode.actions)
    actions = actions.astype(np.float32 if actions.ndim == 2 else np.int64, copy=False)
    rewards = np.asarray(episode.rewards, dtype=np.float32)
    check_finite(where, observations=obs, actions=actions, rewards=rewards)
    complete = bool(steps and episode.terminations[-1])
    segment = Segment(0, 0, steps, complete=complete, ret=float(rewards.sum()),
                      seed=None if seed is None else int(seed))  # fmt: skip
    return obs, actions, rewards, segment


def gym_spaces_of(config: EnvConfig, obs: ObsSpec):
    """The EnvSpec of a gymnasium dataset's env (its kwargs in it), and the observation and
    action spaces a Minari dataset of it holds: the env's own (float64 for MuJoCo states), or
    the frames' uint8 Box where it is watched through pixels."""
    from cfcclone.gym_env import gym_make

    kwargs = dict(config.env_kwargs or {})
    steps = kwargs.pop("max_episode_steps", None)
    spec = gym.spec(config.game)
    spec = dataclasses.replace(
        spec,
        kwargs={**spec.kwargs, **kwargs},
        max_episode_steps=steps or spec.max_episode_steps,
    )
    env = gym_make(dataclasses.replace(config, pixels=False), None)
    try:
        observation_space, action_space = env.observation_space, env.action_space
    finally:
        env.close()
    if obs.kind == "image":
        size = config.screen_size
        observation_space = gym.spaces.Box(0, 255, (size, size), np.uint8)
    return spec, observation_space, action_space
