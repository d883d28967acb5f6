"""Atari envs with the NCP tutorial's preprocessing, one env or many, agreeing byte for byte.

Both paths take raw frames from ALE: 84x84 grayscale, frame skip 4 with a max-pool over the
last two frames (`max_pool=False`: the last frame, as ALE v5 and Minari's datasets have it),
up to 30 no-op starts, sticky actions 0.25, full-game episodes, unclipped rewards. ALE itself
neither stacks, clips nor fires. Then both run the same numpy code:

- `FrameStacker` keeps 4 frames, channel-first. At an episode start every slot holds the first
  frame, as gymnasium's FrameStackObservation (padding "reset"), ray's wrap_deepmind and so the
  tutorial do. `cfcclone.data.expand_stacks` builds a dataset's stacks by the same rule.
- `FireProtocol` (on by default, `EnvConfig.fire=True`): in games whose action set has FIRE,
  the actions of the first `FIRE_STEPS` steps of an episode and of the first `FIRE_STEPS` steps
  after a lost life are replaced by FIRE, so a clone that never learned to serve still plays.
  The episode still runs over all lives and the return counts the whole game. The action ALE
  really got is reported as `info["action"]`. With `fire=False` the strict ALE protocol holds.

`make_env` builds one gymnasium env (it can render, and its `info["ram"]` feeds the RAM
experts). `cfcclone.vector_env.make_vector_env` builds N envs with the same preprocessing: by
default on ale-py's native C++ `AtariVectorEnv`; with `ram=True` (experts that read the
emulator) or a `render_mode`, as gymnasium vector envs over `make_env`. Every kind has
same-step autoreset: the observation returned with `terminated | truncated` is already the
first of the next episode. `cfcclone.rollout` is the one loop that steps them.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

import ale_py
import gymnasium as gym
import numpy as np
from ale_py import roms
from gymnasium.wrappers import AtariPreprocessing

from cfcclone.config import Config, check, is_int
from cfcclone.stacking import FrameStacker

gym.register_envs(ale_py)

FIRE_STEPS = 2
"""Forced FIRE steps. Two, because with sticky actions 0.25 one step's FIRE is lost in about
0.25**4 = 0.4% of serves, and the game then waits forever for a serve that never comes."""


@dataclass(frozen=True)
class EnvConfig(Config):
    """Everything that decides what an observation looks like; saved with every dataset and
    checkpoint so that evaluation replays the preprocessing the policy was trained on."""

    game: str = "breakout"
    """ALE ROM name in snake_case (breakout, pong, ...), or any gymnasium env id (Hopper-v5,
    CartPole-v1, ...): the ids with a version suffix are gymnasium's (`kind`)."""
    frame_skip: int = 4
    """Emulator frames per env step."""
    max_pool: bool = True
    """Max-pool the last two frames of a step (False: its last frame, as ALE v5 envs do)."""
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
    obs_mask: list[int] | None = None
    """gymnasium vector observations: the indices the student sees (a POMDP; e.g. 0 1 2 3 4,
    Hopper-v5's positions). Data keeps the full observation; experts read it whole."""
    pixels: bool = False
    """gymnasium envs: observe rendered frames (grayscale, screen_size, stacked) instead of
    the env's state, which experts still read (info["state"])."""
    obs_noise: float = 0.0
    """gymnasium vector observations: Gaussian noise of this std added to what the student
    sees (a robustness check; experts read the clean state)."""
    frame_skip_jitter: list[int] | None = None
    """ALE envs: LO HI: each step skips a random number of frames in LO..HI (drawn per env
    from its reset seed) instead of frame_skip, and info["duration"] reports the step's
    time in nominal steps (frames / frame_skip): irregular time for liquid policies."""
    env_kwargs: dict | None = None
    """gymnasium envs: keyword arguments of gym.make, as JSON on the command line (e.g.
    '{"terminate_when_unhealthy": false}'); max_episode_steps is one of them."""

    def __post_init__(self):
        check(isinstance(self.game, str) and self.game != "", f"expected a game, got {self.game!r}")
        check(
            self.obs_mask is None
            or (len(self.obs_mask) > 0 and all(is_int(i) and i >= 0 for i in self.obs_mask)
                and len(set(self.obs_mask)) == len(self.obs_mask)),
            f"expected obs_mask as distinct indices >= 0, got {self.obs_mask!r}",
        )  # fmt: skip
        check(
            isinstance(self.obs_noise, (int, float)) and self.obs_noise >= 0,
            f"expected obs_noise >= 0, got {self.obs_noise!r}",
        )
        jitter = self.frame_skip_jitter
        check(
            jitter is None
            or (len(jitter) == 2 and all(is_int(k) and k >= 1 for k in jitter)
                and jitter[0] <= jitter[1] and self.kind == "ale" and self.max_pool),
            f"expected frame_skip_jitter as LO HI with 1 <= LO <= HI, for an ALE env with "
            f"max_pool, got {jitter!r}",
        )  # fmt: skip
        check(
            self.env_kwargs is None or all(isinstance(k, str) for k in self.env_kwargs),
            f"expected env_kwargs as a dict of names, got {self.env_kwargs!r}",
        )
        check(
            self.kind == "gym"
            or (self.obs_mask is None and not self.pixels and not self.obs_noise
                and not self.env_kwargs),
            f"obs_mask, pixels, obs_noise and env_kwargs apply to gymnasium envs, not ALE's "
            f"{self.game!r}",
        )  # fmt: skip
        for name in ("frame_skip", "screen_size", "stack", "max_episode_frames"):
            value = getattr(self, name)
            check(is_int(value) and value >= 1, f"expected {name} >= 1, got {value!r}")
        check(
            is_int(self.noop_max) and self.noop_max >= 0,
            f"expected noop_max >= 0, got {self.noop_max!r}",
        )
        check(
            isinstance(self.sticky_actions, (int, float)) and 0 <= self.sticky_actions <= 1,
            f"expected sticky_actions in [0, 1], got {self.sticky_actions!r}",
        )

    @property
    def kind(self) -> str:
        """ale (an ALE ROM name) or gym (a gymnasium id such as Hopper-v5)."""
        return env_kind(self.game)

    def describe(self) -> str:
        """The game and every setting that differs from the default preprocessing, e.g.
        "breakout (max_pool=False, noop_max=0, sticky_actions=0.0, fire=False)"."""
        default = EnvConfig(game=self.game)
        changed = [
            f"{f.name}={getattr(self, f.name)!r}"
            for f in dataclasses.fields(self)
            if getattr(self, f.name) != getattr(default, f.name)
        ]
        return f"{self.game} ({', '.join(changed) or 'the default preprocessing'})"


def env_kind(game: str) -> str:
    """gym for a gymnasium id ("Hopper-v5", "ALE/Pong-v5"), ale for an ALE ROM name."""
    return "gym" if re.search(r"-v\d+$", game) else "ale"


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


def fire_action(meanings: list[str], config: EnvConfig) -> int | None:
    return meanings.index("FIRE") if config.fire and "FIRE" in meanings else None


def check_actions(actions, num_envs: int, n_actions: int) -> np.ndarray:
    a = np.asarray(actions)
    if a.shape != (num_envs,) or a.dtype.kind not in "iu":
        raise ValueError(
            f"expected actions ({num_envs},) int, got {a.shape} {a.dtype}; "
            "pass one integer action per env"
        )
    if a.size and (a.min() < 0 or a.max() >= n_actions):
        raise ValueError(f"expected actions in [0, {n_actions}), got values {a.min()}..{a.max()}")
    return a.astype(np.int64)


def ale_settings(config: EnvConfig) -> tuple[dict, dict]:
    """The keyword arguments of ALE v5's env and of gymnasium's AtariPreprocessing that make
    `config`'s single frames: the one env here, and the EnvSpec of a Minari export. With
    max_pool, AtariPreprocessing skips frames and pools the last two; without, ALE skips them
    itself and returns the last (ALE v5's own frame skip)."""
    pooled = config.frame_skip if config.max_pool else 1
    ale = dict(
        frameskip=config.frame_skip // pooled,
        repeat_action_probability=config.sticky_actions,
        max_num_frames_per_episode=config.max_episode_frames,
    )
    preprocessing = dict(
        noop_max=config.noop_max,
        frame_skip=pooled,
        screen_size=config.screen_size,
        terminal_on_life_loss=False,
        grayscale_obs=True,
        scale_obs=False,
    )
    return ale, preprocessing


class AtariEnv(gym.Wrapper):
    """One env: gymnasium's ALE v5 env and AtariPreprocessing, then the shared stacker and
    fire protocol. Observations (4, 84, 84) uint8; info carries "lives", "action" and "ram"."""

    def __init__(self, config: EnvConfig, render_mode: str | None = None):
        check_game(config.game)
        ale, preprocessing = ale_settings(config)
        base = gym.make(
            _gym_id(config.game), **ale, full_action_space=False, render_mode=render_mode
        )
        env = AtariPreprocessing(base, **preprocessing)
        super().__init__(env)
        self.config = config
        self.action_meanings = base.unwrapped.get_action_meanings()
        self.stacker = FrameStacker(1, config.stack, config.screen_size)
        self.fire = FireProtocol(1, fire_action(self.action_meanings, config))
        self.observation_space = gym.spaces.Box(0, 255, self.stacker.obs.shape[1:], np.uint8)
        self._row = np.zeros(1, dtype=np.int64)
        self._jitter = np.random.default_rng()

    def _info(self, info: dict, action: int | None, frames: int | None = None) -> dict:
        info = dict(info)
        info["ram"] = self.env.unwrapped.ale.getRAM().copy()
        if action is not None:
            info["action"] = action
        if self.config.frame_skip_jitter:  # the step's time; a reset's counts as one step
            info["duration"] = 1.0 if frames is None else frames / self.config.frame_skip
        return info

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        frame, info = self.env.reset(seed=seed, options=options)
        self._jitter = np.random.default_rng(None if seed is None else [seed, 17])
        self.stacker.start(self._row, frame[None])
        self.fire.start(self._row, np.array([info["lives"]]))
        return self.stacker.obs[0].copy(), self._info(info, None)

    def step(self, action):
        a = check_actions(np.reshape(action, -1), 1, self.action_space.n)
        executed = int(self.fire.apply(self._row, a)[0])
        frames = None
        if self.config.frame_skip_jitter:  # AtariPreprocessing reads its frame_skip each step
            lo, hi = self.config.frame_skip_jitter
            frames = self.env.frame_skip = int(self._jitter.integers(lo, hi + 1))
        frame, reward, terminated, truncated, info = self.env.step(executed)
        done = np.array([terminated or truncated])
        self.fire.observe(self._row, np.array([info["lives"]]), done)
        self.stacker.push(self._row, frame[None])
        info = self._info(info, executed, frames)
        return self.stacker.obs[0].copy(), reward, terminated, truncated, info


def make_env(game: str = "breakout", render_mode: str | None = None, **overrides):
    """One env: an ALE game with the tutorial's preprocessing, or a gymnasium id through
    `cfcclone.gym_env.GymEnv` (stacked, masked or rendered as the config says). `overrides`
    are EnvConfig fields."""
    config = EnvConfig(game=game, **overrides)
    if config.kind == "gym":
        from cfcclone.gym_env import GymEnv

        return GymEnv(config, render_mode=render_mode)
    return AtariEnv(config, render_mode=render_mode)


def env_specs(config: EnvConfig):
    """(ObsSpec, ActionSpec, action meanings) of the env `config` names; a ValueError names
    an unknown game or env id."""
    from cfcclone.spaces import ActionSpec, ObsSpec

    if config.kind == "ale":
        return ObsSpec(), ActionSpec(), action_meanings(config.game)
    from cfcclone.gym_env import gym_specs

    return gym_specs(config)
