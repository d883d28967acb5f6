"""Batch: the windows of a training step, (B, T+stack-1) frames gathered once, and
`expand_stacks`, which views them as (B, T, stack) observations on any device."""

from __future__ import annotations

from dataclasses import dataclass

import torch


def expand_stacks(
    frames: torch.Tensor, episode_start: torch.Tensor | None = None, stack: int = 4
) -> torch.Tensor:
    """frames (B, T+stack-1, *shape) -> stacks (B, T, stack, *shape): stack t holds frames
    t .. t+stack-1, oldest first, as the env stacks them (a view). Frames (H, W) or state
    vectors (d,) alike.

    Where episode_start (B, T) bool marks a step t > 0, the window runs into a new episode
    there, and the stacks of steps t .. t+stack-2 are padded with that step's frame instead of
    reaching back into the old episode, as the env pads them at reset (a gather, not a view).
    """
    view = frames.unfold(1, stack, 1).movedim(-1, 2)
    if episode_start is None or episode_start.shape[1] < 2 or not episode_start[:, 1:].any():
        return view
    b, t = episode_start.shape
    steps = torch.arange(t, device=frames.device)
    # the frame index of the latest episode start at or before each step (0 where none)
    floor = torch.where(episode_start, steps + stack - 1, 0).cummax(1).values
    rows = steps[:, None] + torch.arange(stack, device=frames.device)
    rows = torch.maximum(rows, floor[..., None])  # (B, T, stack)
    return frames[torch.arange(b, device=frames.device)[:, None, None], rows]


@dataclass
class Batch:
    """frames (B, T+stack-1, H, W) uint8 (or (B, T+stack-1, d) float32 states), actions
    (B, T) int64 (or (B, T, a) float32 Box actions), episode_start (B, T) bool, prev_actions
    (B, T) int64: the action ALE executed at the step before each (-1 where none, at an
    episode's first step, and always for Box actions). The stack size is what the frames hold
    beyond the steps."""

    frames: torch.Tensor
    actions: torch.Tensor
    episode_start: torch.Tensor
    prev_actions: torch.Tensor
    elapsed: torch.Tensor | None = None
    """(B, T) float32: the time elapsed before each step's observation, in nominal steps (1
    where the data keeps none); None: 1 everywhere."""

    def to(self, device, non_blocking: bool = False) -> Batch:
        return Batch(*(None if t is None else t.to(device, non_blocking=non_blocking)
                       for t in vars(self).values()))  # fmt: skip

    def pin_memory(self) -> Batch:
        return Batch(*(None if t is None else t.pin_memory() for t in vars(self).values()))

    @property
    def obs(self) -> torch.Tensor:
        """(B, T, stack, H, W) uint8 stacks of the frames (a view unless the window crosses
        into a new episode)."""
        stack = self.frames.shape[1] - self.actions.shape[1] + 1
        return expand_stacks(self.frames, self.episode_start, stack)
