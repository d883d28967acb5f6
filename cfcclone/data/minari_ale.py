"""Minari datasets of ALE games, for `cfcclone.data.minari_format` (whose module doc has the
format): the EnvConfig of an ALE EnvSpec and back, ALE's grayscale and the envs' resize, and
the mapping of a dataset's actions to the game's minimal set.
"""

from __future__ import annotations

import dataclasses

import ale_py
import cv2
import gymnasium as gym
import numpy as np

from cfcclone.data.format import DatasetError, Segment
from cfcclone.envs import EnvConfig, _gym_id, action_meanings, ale_settings, check_game

ALE_ENTRY = "ale_py.env:AtariEnv"
PREPROCESSING = "gymnasium.wrappers.atari_preprocessing:AtariPreprocessing"
LUMA = (2989, 5870, 1140)
"""ALE's grayscale: round(0.2989 R + 0.5870 G + 0.1140 B), in integers (exact)."""


def is_ale(spec) -> bool:
    return spec is not None and spec.entry_point == ALE_ENTRY


def gray(rgb: np.ndarray) -> np.ndarray:
    """ALE's grayscale of RGB frames (..., 3) uint8: what `ale.getScreenGrayscale()` gives."""
    x = rgb.astype(np.int32)
    y = x[..., 0] * LUMA[0] + x[..., 1] * LUMA[1] + x[..., 2] * LUMA[2]
    return ((y + 5000) // 10000).astype(np.uint8)


def preprocess(obs: np.ndarray, size: int) -> np.ndarray:
    """Observations (T, ...) as single frames (T, size, size) uint8, as the envs make them:
    RGB (T, H, W, 3) and grayscale (T, H, W) screens are converted and resized; preprocessed
    frames (T, size, size) are kept; stacks (T, k, size, size) give their newest frame."""
    obs = np.asarray(obs)
    if obs.dtype != np.uint8:
        raise DatasetError(f"expected uint8 observations, got {obs.dtype}")
    if obs.ndim == 4 and obs.shape[-1] == 1:
        obs = obs[..., 0]
    if obs.ndim == 4 and obs.shape[-1] == 3:
        obs = np.stack([gray(frame) for frame in obs]) if len(obs) else obs[..., 0]
    elif obs.ndim == 4 and obs.shape[2:] == (size, size):
        return np.ascontiguousarray(obs[:, -1])
    if obs.ndim != 3:
        raise DatasetError(
            f"expected RGB (H, W, 3), grayscale (H, W) or preprocessed ({size}, {size}) "
            f"observations, got {obs.shape[1:]}"
        )
    if obs.shape[1:] == (size, size):
        return np.ascontiguousarray(obs)
    return np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in obs])


def env_config_of(spec, saved: dict | None = None) -> EnvConfig:
    """The EnvConfig of a Minari dataset's EnvSpec (and of the EnvConfig cfcclone saved in
    its metadata, where it exported it); DatasetError where the env is not one it can match."""
    if spec is None:
        raise DatasetError("the dataset has no env spec, so its game and preprocessing are unknown")
    if spec.entry_point != ALE_ENTRY or "game" not in spec.kwargs:
        raise DatasetError(f"env {spec.id} is not an ALE game (entry point {spec.entry_point})")
    kw = spec.kwargs
    game = check_game(kw["game"])
    if kw.get("obs_type", "rgb") == "ram":
        raise DatasetError(f"env {spec.id} observes the RAM; cfcclone clones from frames")
    skip = kw.get("frameskip", 4)
    if not isinstance(skip, int):
        raise DatasetError(f"env {spec.id} skips a random number of frames ({skip})")
    wrappers = {w.name: w for w in spec.additional_wrappers or ()}
    unknown = sorted(set(wrappers) - {"AtariPreprocessing", "FrameStackObservation"})
    if unknown:
        raise DatasetError(f"env {spec.id} has wrappers cfcclone cannot replay: {unknown}")
    pre = wrappers["AtariPreprocessing"].kwargs if "AtariPreprocessing" in wrappers else None
    fields = dict(game=game, max_pool=False, noop_max=0, fire=False)
    if pre is not None:
        bad = [k for k, ok in [("terminal_on_life_loss", False), ("scale_obs", False),
                               ("grayscale_obs", True)] if pre.get(k, ok) != ok]  # fmt: skip
        if bad:
            raise DatasetError(f"env {spec.id}: AtariPreprocessing with {bad} is not supported")
        size = pre.get("screen_size", 84)
        size = size[0] if isinstance(size, (tuple, list)) and size[0] == size[1] else size
        pooled = pre.get("frame_skip", 4)
        fields.update(max_pool=pooled > 1, noop_max=pre.get("noop_max", 30), screen_size=size)
        skip *= pooled
    frames = kw.get("max_num_frames_per_episode") or 108_000
    if spec.max_episode_steps:
        frames = min(frames, spec.max_episode_steps * skip)
    config = EnvConfig(
        frame_skip=skip,
        sticky_actions=float(kw.get("repeat_action_probability", 0.25)),
        max_episode_frames=frames,
        **fields,
    )
    if saved is not None:  # ours: it also knows the FIRE protocol and the stack
        ours = EnvConfig.from_dict(saved, "metadata cfcclone.env")
        if dataclasses.replace(ours, fire=False, stack=config.stack) != config:
            raise DatasetError(f"its metadata's EnvConfig {ours} disagrees with its env spec")
        config = ours
    return config


def action_map(space, spec, game: str) -> np.ndarray:
    """Dataset action -> index in the game's minimal set (-1: not in it)."""
    minimal = action_meanings(game)
    if not isinstance(space, gym.spaces.Discrete):
        raise DatasetError(f"expected a Discrete action space, got {space}")
    if spec.kwargs.get("full_action_space", False):
        meanings = [a.name for a in ale_py.Action]
        if space.n != len(meanings):
            raise DatasetError(f"full action set of {len(meanings)}, got {space.n} actions")
        return np.array([minimal.index(m) if m in minimal else -1 for m in meanings])
    if space.n != len(minimal):
        raise DatasetError(
            f"{space.n} actions, but {game}'s minimal set has {len(minimal)} ({minimal})"
        )
    return np.arange(space.n)


def ale_episode(item, env: EnvConfig, table: np.ndarray, where: str):
    episode, seed = item
    steps = len(episode.actions)
    try:
        frames = preprocess(np.asarray(episode.observations)[:steps], env.screen_size)
    except DatasetError as e:
        raise DatasetError(f"{where}: {e}") from None
    actions = table[np.asarray(episode.actions, dtype=np.int64)]
    if (actions < 0).any():
        bad = int(np.asarray(episode.actions)[actions < 0][0])
        raise DatasetError(
            f"{where}: action {bad} ({ale_py.Action(bad).name}) is not in {env.game}'s "
            f"minimal set {action_meanings(env.game)}"
        )
    rewards = np.asarray(episode.rewards, dtype=np.float32)
    complete = bool(steps and episode.terminations[-1])
    segment = Segment(0, 0, steps, complete=complete, ret=float(rewards.sum()),
                      seed=None if seed is None else int(seed))  # fmt: skip
    return frames, actions, rewards, segment


def env_spec_of(config: EnvConfig):
    """The EnvSpec of ALE v5 with gymnasium's AtariPreprocessing that makes `config`'s
    single frames (what `recover_environment()` builds for a user of the export)."""
    from gymnasium.envs.registration import WrapperSpec

    ale, preprocessing = ale_settings(config)
    spec = gym.spec(_gym_id(config.game))
    wrapper = WrapperSpec("AtariPreprocessing", PREPROCESSING, preprocessing)
    kwargs = dict(spec.kwargs, **ale)
    return dataclasses.replace(spec, kwargs=kwargs, additional_wrappers=(wrapper,))
