"""Atari envs with the NCP tutorial's preprocessing, one env or many, agreeing byte for byte.

Both paths take raw frames from ALE: 84x84 grayscale, frame skip 4 with a max-pool over the
last two frames, up to 30 no-op starts, sticky actions 0.25, full-game episodes, unclipped
rewards. ALE itself neither stacks, clips nor fires. Then both run the same numpy code:

- `FrameStacker` keeps 4 frames, channel-first. At an episode start every slot holds the first
  frame, as gymnasium's FrameStackObservation (padding "reset"), ray's wrap_deepmind and so the
  tutorial do. `cfcclone.data.expand_stacks` builds a dataset's stacks by the same rule.
- `FireProtocol` (on by default, `EnvConfig.fire=True`): in games whose action set has FIRE,
  the actions of the first `FIRE_STEPS` steps of an episode and of the first `FIRE_STEPS` steps
  after a lost life are replaced by FIRE, so a clone that never learned to serve still plays.
  The episode still runs over all lives and the return counts the whole game. The action ALE
  really got is reported as `info["action"]`. With `fire=False` the strict ALE protocol holds.

This module is the one env factory. `make_env` builds one gymnasium env (it can render, and
its `info["ram"]` feeds the RAM experts). `make_vector_env` builds N envs: by default on ale-py's
native C++ `AtariVectorEnv`; with `ram=True` (experts that read the emulator) or a
`render_mode`, as gymnasium vector envs over `make_env`, in worker processes (N > 1) or in this
one (N = 1). Every kind has same-step autoreset: the observation returned with
`terminated | truncated` is already the first of the next episode. `cfcclone.rollout` is the
one loop that steps them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import ale_py
import gymnasium as gym
import numpy as np
from ale_py import roms
from ale_py.vector_env import AtariVectorEnv
from gymnasium.wrappers import AtariPreprocessing

from cfcclone.config import Config, check

gym.register_envs(ale_py)

FIRE_STEPS = 2
"""Forced FIRE steps. Two, because with sticky actions 0.25 one step's FIRE is lost in about
0.25**4 = 0.4% of serves, and the game then waits forever for a serve that never comes."""


@dataclass(frozen=True)
class EnvConfig(Config):
    """Everything that decides what an observation looks like; saved with every dataset and
    checkpoint so that evaluation replays the preprocessing the policy was trained on."""

    game: str = "breakout"
    """ALE ROM name in snake_case: breakout, pong, space_invaders, ..."""
    frame_skip: int = 4
    """Emulator frames per env step; the last two are max-pooled."""
    screen_size: int = 84
    """Frames are resized to screen_size x screen_size grayscale."""
    stack: int = 4
    """Frames per observation, channel-first."""
    noop_max: int = 30
    """Up to this many no-op steps at the start of an episode (hidden from the agent)."""
    sticky_actions: float = 0.25
    """Probability that ALE repeats the previous action on each frame, as in ALE v5."""
    fire: bool = True
    """Replace the first actions of an episode and after a lost life by FIRE (see module doc)."""
    max_episode_frames: int = 108_000
    """Emulator frames before truncation (30 minutes of play)."""

    def __post_init__(self):
        check(isinstance(self.game, str) and self.game != "", f"expected a game, got {self.game!r}")
        for name in ("frame_skip", "screen_size", "stack", "max_episode_frames"):
            value = getattr(self, name)
            check(_is_int(value) and value >= 1, f"expected {name} >= 1, got {value!r}")
        check(
            _is_int(self.noop_max) and self.noop_max >= 0,
            f"expected noop_max >= 0, got {self.noop_max!r}",
        )
        check(
            isinstance(self.sticky_actions, (int, float)) and 0 <= self.sticky_actions <= 1,
            f"expected sticky_actions in [0, 1], got {self.sticky_actions!r}",
        )


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def check_game(game: str) -> str:
    """Return `game` if ALE ships its ROM, else raise a ValueError naming the valid ones."""
    valid = roms.get_all_rom_ids()
    if game not in valid:
        hint = f" (did you mean {game.lower()!r}?)" if game.lower() in valid else ""
        raise ValueError(f"unknown game {game!r}{hint}; expected an ALE ROM name, one of {valid}")
    return game


def _gym_id(game: str) -> str:
    return "ALE/" + "".join(part.capitalize() for part in game.split("_")) + "-v5"


def action_meanings(game: str) -> list[str]:
    """The game's minimal action set, e.g. ['NOOP', 'FIRE', 'RIGHT', 'LEFT'] for breakout."""
    ale = ale_py.ALEInterface()
    ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Error)
    ale.loadROM(roms.get_rom_path(check_game(game)))
    return [a.name for a in ale.getMinimalActionSet()]


class FrameStacker:
    """The last `stack` frames of N envs, (N, stack, H, W) uint8, padded by the first frame.

    `rows` are env ids (an int array); `frames` holds one frame per env of `rows`, in order."""

    def __init__(self, num_envs: int, stack: int, size: int):
        self.obs = np.zeros((num_envs, stack, size, size), dtype=np.uint8)

    def start(self, rows: np.ndarray, frames: np.ndarray) -> None:
        """Begin new episodes in `rows`, frames (len(rows), H, W): every slot gets the frame."""
        self.obs[rows] = frames[:, None]

    def push(self, rows: np.ndarray, frames: np.ndarray) -> None:
        """Append frames (len(rows), H, W) to `rows`, dropping their oldest frame."""
        self.obs[rows, :-1] = self.obs[rows, 1:]
        self.obs[rows, -1] = frames


class FireProtocol:
    """Forces FIRE after each episode start and each lost life, for N envs (see module doc).
    `rows` are env ids (an int array); the other arguments hold one entry per env of `rows`."""

    def __init__(self, num_envs: int, fire_action: int | None):
        self.fire_action = fire_action
        self.pending = np.zeros(num_envs, dtype=np.int64)
        self.lives = np.zeros(num_envs, dtype=np.int64)

    def start(self, rows: np.ndarray, lives: np.ndarray) -> None:
        self.lives[rows] = lives
        if self.fire_action is not None:
            self.pending[rows] = FIRE_STEPS

    def observe(self, rows: np.ndarray, lives: np.ndarray, done: np.ndarray) -> None:
        """After a step of `rows`: envs that lost a life and play on must serve again."""
        lost = (lives < self.lives[rows]) & ~done
        if self.fire_action is not None:
            self.pending[rows[lost]] = FIRE_STEPS
        self.lives[rows[~done]] = lives[~done]

    def apply(self, rows: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """The actions to send to ALE for `rows`: FIRE where a serve is pending, else
        `actions`."""
        if self.fire_action is None:
            return actions
        forced = self.pending[rows] > 0
        self.pending[rows[forced]] -= 1
        return np.where(forced, self.fire_action, actions)


def _fire_action(meanings: list[str], config: EnvConfig) -> int | None:
    return meanings.index("FIRE") if config.fire and "FIRE" in meanings else None


def _check_actions(actions, num_envs: int, n_actions: int) -> np.ndarray:
    a = np.asarray(actions)
    if a.shape != (num_envs,) or a.dtype.kind not in "iu":
        raise ValueError(
            f"expected actions ({num_envs},) int, got {a.shape} {a.dtype}; "
            "pass one integer action per env"
        )
    if a.size and (a.min() < 0 or a.max() >= n_actions):
        raise ValueError(f"expected actions in [0, {n_actions}), got values {a.min()}..{a.max()}")
    return a.astype(np.int64)


class AtariEnv(gym.Wrapper):
    """One env: gymnasium's ALE v5 env and AtariPreprocessing, then the shared stacker and
    fire protocol. Observations (4, 84, 84) uint8; info carries "lives", "action" and "ram"."""

    def __init__(self, config: EnvConfig, render_mode: str | None = None):
        check_game(config.game)
        base = gym.make(
            _gym_id(config.game),
            frameskip=1,
            repeat_action_probability=config.sticky_actions,
            full_action_space=False,
            max_num_frames_per_episode=config.max_episode_frames,
            render_mode=render_mode,
        )
        env = AtariPreprocessing(
            base,
            noop_max=config.noop_max,
            frame_skip=config.frame_skip,
            screen_size=config.screen_size,
            terminal_on_life_loss=False,
            grayscale_obs=True,
            scale_obs=False,
        )
        super().__init__(env)
        self.config = config
        self.action_meanings = base.unwrapped.get_action_meanings()
        self.stacker = FrameStacker(1, config.stack, config.screen_size)
        self.fire = FireProtocol(1, _fire_action(self.action_meanings, config))
        self.observation_space = gym.spaces.Box(0, 255, self.stacker.obs.shape[1:], np.uint8)
        self._row = np.zeros(1, dtype=np.int64)

    def _info(self, info: dict, action: int | None) -> dict:
        info = dict(info)
        info["ram"] = self.env.unwrapped.ale.getRAM().copy()
        if action is not None:
            info["action"] = action
        return info

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        frame, info = self.env.reset(seed=seed, options=options)
        self.stacker.start(self._row, frame[None])
        self.fire.start(self._row, np.array([info["lives"]]))
        return self.stacker.obs[0].copy(), self._info(info, None)

    def step(self, action):
        a = _check_actions(np.reshape(action, -1), 1, self.action_space.n)
        executed = int(self.fire.apply(self._row, a)[0])
        frame, reward, terminated, truncated, info = self.env.step(executed)
        done = np.array([terminated or truncated])
        self.fire.observe(self._row, np.array([info["lives"]]), done)
        self.stacker.push(self._row, frame[None])
        return self.stacker.obs[0].copy(), reward, terminated, truncated, self._info(info, executed)


def make_env(game: str = "breakout", render_mode: str | None = None, **overrides) -> AtariEnv:
    """One env with the tutorial's preprocessing. `overrides` are EnvConfig fields."""
    return AtariEnv(EnvConfig(game=game, **overrides), render_mode=render_mode)


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
        if not (_is_int(batch) and 1 <= batch <= num_envs and num_envs % batch == 0):
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
        self.fire = FireProtocol(num_envs, _fire_action(self.action_meanings, config))
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
            first = None if seed is None else seed + k * self.batch_size
            self._held[k] = group.reset(seed=first)
        self._stepping[:] = False
        self._group = len(self._groups) - 1
        obs, *_, info = self.recv()
        return obs, info

    def send(self, actions) -> None:
        """Send the actions of the last batch's envs (`info["env_id"]` of the last return)."""
        a = _check_actions(actions, self.batch_size, self.single_action_space.n)
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
        maxpool=True,
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
    """The batch of asynchronous stepping that rolls out fastest: half the envs (so the model
    steps one half while the emulator steps the other), or all of them where N is odd.
    Measured on 2 cores with 16 envs: see BENCHMARKS.md."""
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

    Default: ale-py's C++ vector env (fastest); `batch_size` B < N steps it asynchronously, B
    envs at a time (see `VectorAtariEnv`). `ram=True`: gymnasium envs whose info holds
    "ram" (N, 128), for the RAM experts; `render_mode`: one in-process env that renders; both
    step all N envs together. `config` (an EnvConfig) or `game` and `overrides` (EnvConfig
    fields) set the preprocessing. Every kind has `.config`, `.action_meanings` and
    `.batch_size`.
    """
    config = config if config is not None else EnvConfig(game=game, **overrides)
    if num_envs < 1:
        raise ValueError(f"expected num_envs >= 1, got {num_envs}")
    if batch_size not in (None, num_envs) and (ram or render_mode is not None):
        raise ValueError(
            f"batch_size {batch_size} < num_envs {num_envs} needs the C++ env; RAM envs and "
            "rendering envs step all envs together"
        )
    if render_mode is not None:
        return SyncAtariEnv(config, num_envs, render_mode)
    if ram:
        return SyncAtariEnv(config, 1) if num_envs == 1 else AsyncAtariEnv(config, num_envs)
    return VectorAtariEnv(config, num_envs, num_threads, batch_size)
