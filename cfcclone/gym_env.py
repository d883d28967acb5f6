"""Any gymnasium env, observed as cfcclone observes ALE: stacked, with same-step autoreset.

`GymEnv` wraps one `gym.make(config.game)`:

- state vectors: the observation is (stack, d) float32, the env's own observation, stacked
  and padded by the first at an episode start (`FrameStacker`, as frames are). With
  `obs_noise` the student's copy gets Gaussian noise, seeded by the reset seed.
- pixels (`EnvConfig.pixels`): the env renders an RGB frame each step, which becomes an
  (screen_size, screen_size) uint8 grayscale frame (cv2's INTER_AREA, as ALE's), stacked:
  (stack, H, W), as ALE's. CartPole from pixels is this path.

Either way `info["state"]` is the env's own observation, unmasked and noiseless: what a state
expert reads (`cfcclone.experts`), while the student sees the observation, masked by its
policy (`EnvConfig.obs_mask`, applied inside the model, so data, agent, ONNX and `predict`
share it). `GymVectorEnv` steps N of them in this process with gymnasium's same-step
autoreset, which `cfcclone.rollout` expects; `make_vector_env` builds it for gym ids.
"""

from __future__ import annotations

import os

import gymnasium as gym
import numpy as np

from cfcclone.spaces import specs_of
from cfcclone.stacking import FrameStacker


def gym_make(config, render_mode: str | None = None):
    """gym.make of `config.game` with its env_kwargs; ValueError naming the env where it
    cannot be made. Rendered off-screen where there is no display."""
    if config.pixels and render_mode in (None, "rgb_array"):
        render_mode = "rgb_array"
    if render_mode == "rgb_array":  # off-screen: pygame without a window, MuJoCo on EGL
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
        if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            os.environ.setdefault("MUJOCO_GL", "egl")
    try:
        return gym.make(config.game, render_mode=render_mode, **(config.env_kwargs or {}))
    except (gym.error.Error, TypeError) as e:  # NameNotFound, a kwarg it does not take, ...
        raise ValueError(f"cannot make gymnasium env {config.game!r}: {e}") from None


def gym_specs(config):
    """(ObsSpec, ActionSpec, action meanings) of the gymnasium env `config.game`."""
    env = gym_make(config, None)
    try:
        obs, action = specs_of(env.observation_space, env.action_space, config.pixels)
        meanings = []
        if not action.is_box:
            names = getattr(env.unwrapped, "get_action_meanings", None)
            meanings = list(names()) if names else [str(i) for i in range(env.action_space.n)]
    finally:
        env.close()
    if config.obs_mask is not None and obs.kind == "vector" and max(config.obs_mask) >= obs.dim:
        raise ValueError(
            f"obs_mask {config.obs_mask} indexes past {config.game}'s {obs.dim} observations"
        )
    return obs, action, meanings


def to_gray(frame: np.ndarray, size: int) -> np.ndarray:
    """An RGB frame (H, W, 3) uint8 -> (size, size) uint8 grayscale, area-resized."""
    import cv2

    gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    return cv2.resize(gray, (size, size), interpolation=cv2.INTER_AREA)


class GymEnv(gym.Wrapper):
    """One gymnasium env with cfcclone's observation (see the module doc); info carries the
    env's own observation as "state"."""

    def __init__(self, config, render_mode: str | None = None):
        env = gym_make(config, render_mode)
        super().__init__(env)
        self.config = config
        self.obs_spec, self.action_spec = specs_of(env.observation_space, env.action_space,
                                                   config.pixels)  # fmt: skip
        shape = self.obs_spec.shape(config.screen_size)
        self.stacker = FrameStacker(1, config.stack, shape, self.obs_spec.dtype)
        low, high = (0, 255) if config.pixels else (-np.inf, np.inf)
        self.observation_space = gym.spaces.Box(low, high, self.stacker.obs.shape[1:],
                                                self.obs_spec.dtype)  # fmt: skip
        self.action_meanings = [] if self.action_spec.is_box else [
            str(i) for i in range(env.action_space.n)]  # fmt: skip
        self._row = np.zeros(1, dtype=np.int64)
        self._noise = np.random.default_rng()

    def _observe(self, state) -> np.ndarray:
        if self.config.pixels:
            return to_gray(self.env.render(), self.config.screen_size)[None]
        x = np.asarray(state, np.float32)
        if self.config.obs_noise:
            x = x + self._noise.normal(0, self.config.obs_noise, x.shape).astype(np.float32)
        return x[None]

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        state, info = self.env.reset(seed=seed, options=options)
        self._noise = np.random.default_rng(None if seed is None else [seed, 7])
        self.stacker.start(self._row, self._observe(state))
        return self.stacker.obs[0].copy(), {**info, "state": np.asarray(state, np.float32)}

    def step(self, action):
        if not self.action_spec.is_box:
            action = int(np.reshape(action, -1)[0])
        state, reward, terminated, truncated, info = self.env.step(action)
        self.stacker.push(self._row, self._observe(state))
        info = {**info, "state": np.asarray(state, np.float32)}
        return self.stacker.obs[0].copy(), reward, terminated, truncated, info


class GymVectorEnv(gym.vector.SyncVectorEnv):
    """N `GymEnv`s stepped in this process with same-step autoreset; `.config`,
    `.action_meanings`, `.action_spec`, `.batch_size` as the ALE vector envs have them."""

    def __init__(self, config, num_envs: int, render_mode: str | None = None):
        if num_envs < 1:
            raise ValueError(f"expected num_envs >= 1, got {num_envs}")
        super().__init__(
            [lambda: GymEnv(config, render_mode) for _ in range(num_envs)],
            autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
        )
        self.config, self.batch_size = config, num_envs
        self.action_meanings = self.envs[0].action_meanings
        self.action_spec = self.envs[0].action_spec
