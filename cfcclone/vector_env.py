"""N envs: ale-py's C++ vector env, synchronous or in asynchronous groups, and gymnasium
vector envs over `make_env` for RAM experts and rendering; `make_vector_env` picks one.

Every kind produces exactly `cfcclone.envs.make_env`'s observations (the same `FrameStacker`
and `FireProtocol`), with same-step autoreset, and has `.config`, `.action_meanings` and
`.batch_size`. `cfcclone.rollout` is the one loop that steps them.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import gymnasium as gym
import numpy as np
from ale_py.vector_env import AtariVectorEnv

from cfcclone.envs import (
    AtariEnv,
    EnvConfig,
    FireProtocol,
    FrameStacker,
    action_meanings,
    check_actions,
    check_game,
    fire_action,
    is_int,
)


class VectorAtariEnv(gym.vector.VectorEnv):
    """N envs on ale-py's C++ AtariVectorEnv with the shared stacker and fire protocol.

    `num_threads`: emulator threads of each group (default: the cores shared out among the
    groups, at least one).

    Observations (B, 4, 84, 84) uint8 for a batch of B envs whose ids are `info["env_id"]`.
    With `batch_size` B = N (the default) every step returns all N envs in order. With B < N
    the envs run asynchronously, in N / B groups of B envs, each a synchronous C++ vector env
    with its own threads: `step` (or `send` then `recv`) sends the actions of the last batch's
    group, which then emulates while the next group's results are returned, so the model acts
    on one group while the emulator steps the others (EnvPool's overlap). ale-py's own
    `batch_size` is not used: in ale-py 0.12 it can drop an env's result, and the env never
    comes back (ALE issue #641). An env's first appearance after `reset` carries its first
    observation (no step result); `cfcclone.rollout` tracks this. Each env's trajectory
    depends only on its seed (env i gets seed + i) and its actions, never on the batching.

    Autoreset is same-step: where `terminated | truncated` the returned observation starts the
    next episode, and `info["final_obs"]` (B, 4, 84, 84) holds the episode's last one in those
    rows. `info["action"]` is what ALE really got.
    """

    def __init__(
        self,
        config: EnvConfig,
        num_envs: int,
        num_threads: int | None = None,
        batch_size: int | None = None,
    ):
        check_game(config.game)
        if num_envs < 1:
            raise ValueError(f"expected num_envs >= 1, got {num_envs}")
        batch = num_envs if batch_size is None else batch_size
        if not (is_int(batch) and 1 <= batch <= num_envs and num_envs % batch == 0):
            raise ValueError(
                f"expected batch_size dividing num_envs {num_envs} (1 <= batch_size <= "
                f"{num_envs}), got {batch_size!r}"
            )
        groups = num_envs // batch  # the cores are shared out: spinning idle threads cost
        threads = num_threads or max(1, min(batch, (os.cpu_count() or 1) // groups))
        self._groups = [_cpp_env(config, batch, threads) for _ in range(groups)]
        self.config, self.num_envs, self.batch_size = config, num_envs, batch
        self.action_meanings = [a.name for a in self._groups[0].ale.get_action_set()]
        self.stacker = FrameStacker(num_envs, config.stack, config.screen_size)
        self.fire = FireProtocol(num_envs, fire_action(self.action_meanings, config))
        self.metadata = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP}
        self.single_observation_space = gym.spaces.Box(0, 255, self.stacker.obs.shape[1:], np.uint8)
        self.single_action_space = self._groups[0].single_action_space
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, batch)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, batch)
        self._group = 0  # the group of the last batch, whose actions come next
        self._in_flight = [False] * len(self._groups)  # a group's step not yet received
        self._held: list[tuple | None] = [None] * len(
            self._groups
        )  # reset results not yet returned
        self._stepping = np.zeros(num_envs, dtype=bool)  # an action sent, its result not back
        self._executed = np.zeros(num_envs, dtype=np.int64)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Reset all N envs (env i with seed + i); returns the first batch."""
        if options:
            raise ValueError(f"expected no reset options, got {sorted(options)}")
        for k, group in enumerate(self._groups):
            if self._in_flight[k]:  # a step of an abandoned rollout: collect and drop it
                group.recv()
                self._in_flight[k] = False
        firsts = [
            None if seed is None else seed + k * self.batch_size for k in range(len(self._groups))
        ]
        if len(self._groups) == 1:
            self._held = [self._groups[0].reset(seed=firsts[0])]
        else:  # a seeded reset reloads each ROM (~65 ms an env): the groups reset side by side
            with ThreadPoolExecutor(min(len(self._groups), os.cpu_count() or 1)) as pool:
                self._held = list(pool.map(lambda g, s: g.reset(seed=s), self._groups, firsts))
        self._stepping[:] = False
        self._group = len(self._groups) - 1
        obs, *_, info = self.recv()
        return obs, info

    def send(self, actions) -> None:
        """Send the actions of the last batch's envs (`info["env_id"]` of the last return)."""
        a = check_actions(actions, self.batch_size, self.single_action_space.n)
        k = self._group
        if self._in_flight[k]:
            raise RuntimeError("send() called twice without recv(): actions already sent")
        ids = self._ids(k)
        executed = self.fire.apply(ids, a)
        self._groups[k].send(executed)
        self._executed[ids], self._stepping[ids], self._in_flight[k] = executed, True, True

    def recv(self):
        """The next group's B envs: obs, rewards, terminated, truncated, info."""
        k = self._group = (self._group + 1) % len(self._groups)
        if self._held[k] is not None:  # its reset result: no step result yet
            (frames, info), self._held[k] = self._held[k], None
            rewards = np.zeros(self.batch_size)
            terminated = truncated = np.zeros(self.batch_size, dtype=bool)
        elif self._in_flight[k]:
            frames, rewards, terminated, truncated, info = self._groups[k].recv()
            self._in_flight[k] = False
        else:
            raise RuntimeError("recv() without send(): no step of this batch is in flight")
        ids = self._ids(k)
        info["env_id"], frames = ids, frames[:, -1]
        stepped = self._stepping[ids]
        self._stepping[ids] = False
        done = (terminated | truncated) & stepped
        if done.any():
            final = np.zeros((len(ids), *self.stacker.obs.shape[1:]), np.uint8)
            final[:, :-1] = self.stacker.obs[ids, 1:]
            final[done, -1] = info["final_obs"][done, -1]
            info["final_obs"] = final
        self.fire.observe(ids[stepped], info["lives"][stepped], done[stepped])
        fresh = done | ~stepped
        self.fire.start(ids[fresh], info["lives"][fresh])
        self.stacker.push(ids[~fresh], frames[~fresh])
        self.stacker.start(ids[fresh], frames[fresh])
        info["action"] = np.where(stepped, self._executed[ids], -1)
        info["_action"] = stepped
        obs = self.stacker.obs[ids]
        return obs, rewards.astype(np.float64), terminated & stepped, truncated & stepped, info

    def _ids(self, group: int) -> np.ndarray:
        return np.arange(group * self.batch_size, (group + 1) * self.batch_size)

    def step(self, actions):
        self.send(actions)
        return self.recv()

    def close_extras(self, **kwargs) -> None:
        for group in self._groups:
            group.close()


def _cpp_env(config: EnvConfig, num_envs: int, threads: int) -> AtariVectorEnv:
    """ale-py's synchronous C++ vector env: raw preprocessed frames, no stacking, no fire."""
    return AtariVectorEnv(
        config.game,
        num_envs,
        num_threads=threads,
        max_num_frames_per_episode=config.max_episode_frames,
        repeat_action_probability=config.sticky_actions,
        full_action_space=False,
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
        img_height=config.screen_size,
        img_width=config.screen_size,
        grayscale=True,
        stack_num=1,
        frameskip=config.frame_skip,
        maxpool=config.max_pool,
        noop_max=config.noop_max,
        episodic_life=False,
        reward_clipping=False,
        use_fire_reset=False,
    )


class SyncAtariEnv(gym.vector.SyncVectorEnv):
    """`make_env`s stepped in this process (one env that can render, or a few for tests)."""

    def __init__(self, config: EnvConfig, num_envs: int, render_mode: str | None = None):
        super().__init__(
            [lambda: AtariEnv(config, render_mode) for _ in range(num_envs)],
            autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
        )
        self.config, self.action_meanings = config, self.envs[0].action_meanings
        self.batch_size = num_envs


class AsyncAtariEnv(gym.vector.AsyncVectorEnv):
    """`make_env`s in worker processes, each info carrying "ram" (N, 128) for RAM experts."""

    def __init__(self, config: EnvConfig, num_envs: int):
        super().__init__(
            [lambda: AtariEnv(config) for _ in range(num_envs)],
            autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
        )
        self.config, self.action_meanings = config, action_meanings(config.game)
        self.batch_size = num_envs


def default_batch(num_envs: int) -> int:
    """The batch of asynchronous stepping that rolls out fastest on 2 cores: a quarter of the
    envs where N is a multiple of 4 from 8 up (the model steps one group while three emulate),
    else half of them, or all where N is odd. Measured with 4 to 32 envs: see
    experiments/log.md."""
    if num_envs >= 8 and num_envs % 4 == 0:
        return num_envs // 4
    return num_envs // 2 if num_envs % 2 == 0 else num_envs


def make_vector_env(
    game: str = "breakout",
    num_envs: int = 8,
    num_threads: int | None = None,
    *,
    batch_size: int | None = None,
    ram: bool = False,
    render_mode: str | None = None,
    config: EnvConfig | None = None,
    **overrides,
) -> gym.vector.VectorEnv:
    """N envs with exactly `make_env`'s preprocessing and same-step autoreset.

    A gymnasium id (`EnvConfig.kind` gym) gives `cfcclone.gym_env.GymVectorEnv`. For ALE games,
    the default is ale-py's C++ vector env (fastest); `batch_size` B < N steps it asynchronously, B
    envs at a time (see `VectorAtariEnv`). `ram=True`: gymnasium envs whose info holds
    "ram" (N, 128), for the RAM experts; `render_mode`: one in-process env that renders; both
    step all N envs together. `config` (an EnvConfig) or `game` and `overrides` (EnvConfig
    fields) set the preprocessing. Every kind has `.config`, `.action_meanings` and
    `.batch_size`.
    """
    config = config if config is not None else EnvConfig(game=game, **overrides)
    if num_envs < 1:
        raise ValueError(f"expected num_envs >= 1, got {num_envs}")
    if config.kind == "gym":  # in-process: a MuJoCo step (~20 us) is far below a process hop
        from cfcclone.gym_env import GymVectorEnv

        if batch_size not in (None, num_envs):
            raise ValueError(f"gymnasium envs step all {num_envs} together; drop --batch")
        return GymVectorEnv(config, num_envs, render_mode)
    if batch_size not in (None, num_envs) and (ram or render_mode is not None):
        raise ValueError(
            f"batch_size {batch_size} < num_envs {num_envs} needs the C++ env; RAM envs and "
            "rendering envs step all envs together"
        )
    if config.frame_skip_jitter and batch_size not in (None, num_envs):
        raise ValueError("frame-skip jitter needs gymnasium's envs, which step all envs together")
    if render_mode is not None:
        return SyncAtariEnv(config, num_envs, render_mode)
    if ram or config.frame_skip_jitter:  # ale-py's C++ envs skip a fixed number of frames
        return SyncAtariEnv(config, 1) if num_envs == 1 else AsyncAtariEnv(config, num_envs)
    return VectorAtariEnv(config, num_envs, num_threads, batch_size)
