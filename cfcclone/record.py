"""`cfcclone record`: a person plays in a window, and every episode becomes a shard.

The env is `make_env`'s preprocessing (the FIRE protocol off: a person serves with Space) at
the agent's step rate, `fps` steps a second (15 is real time: 4 frames of 1/60 s a step). The
player is an `Actor` in the one rollout loop (`cfcclone.rollout`), so what is stored is what
`collect` stores: the observation the player saw, the action ALE executed and the reward,
written through the same `EpisodeWriter`, one shard per episode, expert "human".

Keys: the arrows or W A S D move, Space fires; together they make the game's combined actions
(UPRIGHTFIRE, ...) where its minimal action set has them, else the largest part it has
(moving before firing).
Esc or closing the window stops: the episode in progress is kept, marked incomplete.
`resume=True` appends episodes. pygame comes with the 'human' extra; headless, SDL's dummy
video driver (SDL_VIDEODRIVER=dummy) plays with injected key events.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from cfcclone.data.collect import episode_seed, prepare_out, resume_point, shard_name
from cfcclone.data.format import EpisodeWriter
from cfcclone.data.manifest import Manifest
from cfcclone.envs import EnvConfig, action_meanings, check_game
from cfcclone.play import has_display
from cfcclone.rollout import rollout
from cfcclone.vector_env import make_vector_env

DIRECTIONS = {"UP": "UP", "W": "UP", "DOWN": "DOWN", "S": "DOWN", "LEFT": "LEFT", "A": "LEFT",
              "RIGHT": "RIGHT", "D": "RIGHT", "SPACE": "FIRE"}  # fmt: skip
"""pygame key names (upper case) -> the part of an ALE action they press."""


class StopRecording(Exception):
    """The player pressed Esc or closed the window."""


def action_of(pressed: set[str], meanings: list[str]) -> int:
    """The action of the pressed parts ({"UP", "LEFT", "FIRE"}, ...) in the game's `meanings`:
    the whole combination where the game has it, else the largest part of it that it has,
    moving before firing."""
    v = "UP" if "UP" in pressed and "DOWN" not in pressed else ""
    v = "DOWN" if "DOWN" in pressed and "UP" not in pressed else v
    h = "RIGHT" if "RIGHT" in pressed and "LEFT" not in pressed else ""
    h = "LEFT" if "LEFT" in pressed and "RIGHT" not in pressed else h
    f = "FIRE" if "FIRE" in pressed else ""
    for name in (v + h + f, v + h, h + f, v + f, h, v, f):
        if name and name in meanings:
            return meanings.index(name)
    return meanings.index("NOOP") if "NOOP" in meanings else 0


def _pygame():
    try:
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        import pygame
    except ImportError:
        raise ValueError("recording needs pygame: pip install 'cfcclone[human]'") from None
    return pygame


class HumanPlayer:
    """An Actor for one env: shows the screen, reads the keyboard, paces to `fps`."""

    def __init__(self, screen: Callable[[], np.ndarray], meanings, fps: float, scale: int,
                 before_step: Callable[[int], None] | None = None):  # fmt: skip
        self.pg = _pygame()
        self.pg.display.init()
        self.screen, self.meanings, self.fps, self.scale = screen, meanings, fps, scale
        self.before_step = before_step
        self.window = None
        self.clock = self.pg.time.Clock()
        self.keys: set[str] = set()
        self.steps = 0
        self.caption = ""

    def _events(self) -> None:
        pg = self.pg
        for event in pg.event.get():
            if event.type == pg.QUIT:
                raise StopRecording
            if event.type in (pg.KEYDOWN, pg.KEYUP):
                name = pg.key.name(event.key).upper()
                if event.type == pg.KEYDOWN and name == "ESCAPE":
                    raise StopRecording
                if event.type == pg.KEYDOWN:
                    self.keys.add(name)
                else:
                    self.keys.discard(name)

    def _show(self) -> None:
        frame = self.screen()  # (210, 160, 3) uint8
        size = (frame.shape[1] * self.scale, frame.shape[0] * self.scale)
        if self.window is None:
            self.window = self.pg.display.set_mode(size)
        surface = self.pg.surfarray.make_surface(frame.swapaxes(0, 1))
        self.window.blit(self.pg.transform.scale(surface, size), (0, 0))
        self.pg.display.set_caption(self.caption)
        self.pg.display.flip()

    def act(self, obs, episode_start, info) -> np.ndarray:
        if self.before_step is not None:
            self.before_step(self.steps)
        self._events()
        self._show()
        self.clock.tick(self.fps)
        self.steps += 1
        pressed = {DIRECTIONS[k] for k in self.keys if k in DIRECTIONS}
        return np.array([action_of(pressed, self.meanings)], dtype=np.int64)

    def close(self) -> None:
        self.pg.display.quit()


def record(
    out: str | Path,
    game: str = "breakout",
    fps: float = 15.0,
    episodes: int | None = None,
    seed: int = 0,
    resume: bool = False,
    scale: int = 4,
    before_step: Callable[[int], None] | None = None,
    **env_overrides,
) -> Manifest:
    """Record a person's play of `game` into dataset `out`; returns its manifest.

    Args:
        out: the dataset folder to write (or, with resume, to append to).
        game: the ALE game (snake_case ROM name).
        fps: agent steps a second (15 is the game's real pace; lower is easier).
        episodes: stop after this many finished episodes (default: when Esc is pressed).
        seed: episode j is reset with a seed derived from (seed, 0, j), as collect does.
        resume: append episodes to the recording at `out`.
        scale: window pixels per screen pixel.
        before_step: called with the step count before each step's keys are read (scripts
            and tests drive the recorder through it, e.g. by posting key events).
    """
    out = Path(out)
    check_game(game)
    if fps <= 0 or scale < 1 or (episodes is not None and episodes < 1):
        raise ValueError(
            f"expected fps > 0, scale >= 1 and episodes >= 1, got {fps}, {scale}, {episodes}"
        )
    if not has_display() and os.environ.get("SDL_VIDEODRIVER") != "dummy":
        raise ValueError("record needs a display (headless: SDL_VIDEODRIVER=dummy, for scripts)")
    _pygame()  # a missing extra fails here, before anything is written
    config = EnvConfig(game=game, **{"fire": False, **env_overrides})
    meanings = action_meanings(game)
    settings = Manifest(game=game, env=config, action_meanings=meanings, expert="human",
                        source="human", seed=seed, workers=1, status="collecting")  # fmt: skip
    prepare_out(out, settings, resume)
    settings.write(out)
    env = make_vector_env(num_envs=1, config=config, render_mode="rgb_array")
    player = HumanPlayer(lambda: env.render()[0], meanings, fps, scale, before_step)
    _, first = resume_point(out, 0)
    writer = EpisodeWriter(out, 1, lambda _, k: shard_name(0, first + k), game=game)
    try:
        while episodes is None or writer.count[0] < episodes:
            j = first + writer.count[0]
            if not _episode(env, player, writer, episode_seed(seed, 0, j), j):
                break
    finally:
        player.close()
        env.close()
        manifest = settings.summarized(out, status="complete")
        manifest.write(out)
    return manifest


def _episode(env, player: HumanPlayer, writer: EpisodeWriter, seed: int, j: int) -> bool:
    """Play episode j until it ends (True) or the player stops (False); write it either way."""
    total = 0.0
    try:
        for t in rollout(env, player, seed):
            writer.add(t.obs, t.executed, t.reward)
            total += float(t.reward[0])
            player.caption = f"episode {j}  return {total:g}  (Esc stops)"
            if t.done[0]:
                writer.end(0, complete=True, seed=seed)
                return True
    except StopRecording:
        return False
    finally:  # stopped, or a crash: the steps so far are kept (nothing where it was written)
        writer.end(0, complete=False, seed=seed)
    return False
