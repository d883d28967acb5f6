"""Where Breakout and Pong keep their state in the emulator's 128 bytes of RAM.

The one home of the RAM addresses that the experts read (AtariARI's addresses, calibrated
against screen pixels). Each reader takes ram (N, 128) and returns float64 arrays (N,) in
screen units, so the experts never index RAM themselves.

Breakout (x = column of the 160x210 screen): ball centre x = ram[99] - 48, reflecting at 8 and
152; ball top row = ram[101] + 9, so the paddle (top row 189) is met when ram[101] reaches 177;
ram[101] is 0 while no ball is in play. Paddle left edge = ram[72] - 47, in [8, 144]; width 16,
12 once ram[97] bit 7 is set (after the ball hits the top wall). ALE's paddle knob ram[70]
moves 6 px per frame held, and the paddle eases towards its rest point 187 - ram[70].

Pong (RAM units): ball x = ram[49] (our paddle's face at 188), ball y = ram[54], our paddle's
y = ram[51] in [38, 203].
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np


def _ram(ram) -> np.ndarray:
    ram = np.asarray(ram)
    if ram.ndim != 2 or ram.shape[1] != 128:
        raise ValueError(f"expected ram (N, 128), got {ram.shape}")
    return ram.astype(np.float64)


@dataclass(frozen=True)
class Breakout:
    """Breakout's ball and paddle, (N,) arrays in screen pixels."""

    ball_x: np.ndarray
    """Ball centre column."""
    ball_y: np.ndarray
    """ram[101]: 0 without a ball in play, 177 where it meets the paddle."""
    paddle: np.ndarray
    """Paddle left edge."""
    rest: np.ndarray
    """Where the paddle's left edge comes to rest (its momentum), clipped to [8, 144]."""
    width: np.ndarray
    """Paddle width: 16, or 12 after the ball hit the top wall."""

    @classmethod
    def read(cls, ram) -> Breakout:
        r = _ram(ram)
        return cls(
            ball_x=r[:, 99] - 48.0,
            ball_y=r[:, 101],
            paddle=r[:, 72] - 47.0,
            rest=np.clip(187.0 - r[:, 70], 8.0, 144.0),
            width=np.where(r[:, 97] >= 128, 12.0, 16.0),
        )


@dataclass(frozen=True)
class Pong:
    """Pong's ball and our paddle, (N,) arrays in RAM units."""

    ball_x: np.ndarray
    ball_y: np.ndarray
    paddle: np.ndarray

    @classmethod
    def read(cls, ram) -> Pong:
        r = _ram(ram)
        return cls(ball_x=r[:, 49], ball_y=r[:, 54], paddle=r[:, 51])


READERS = {"breakout": Breakout, "pong": Pong}


def state_vector(game: str, ram) -> np.ndarray:
    """(N, k) float32: every field of `game`'s RAM reader, in its order and units."""
    if game not in READERS:
        raise ValueError(f"no RAM reader for {game!r}; expected one of {sorted(READERS)}")
    s = READERS[game].read(ram)
    return np.stack([getattr(s, f.name) for f in fields(s)], 1).astype(np.float32)
