"""`cfcclone play`: one env live, in a window or recorded to a GIF or MP4.

The agent's hidden state is carried through each episode and reset at the next; the episodes
run through `cfcclone.rollout`, the same loop as evaluation. Recording renders the emulator's
RGB screen (210x160), so it works headless; a window needs a display.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from cfcclone.agent import StatefulAgent, check_policy_matches_env
from cfcclone.atomic import atomic_path, check_file_target
from cfcclone.envs import EnvConfig
from cfcclone.models import ConvCfC
from cfcclone.rollout import rollout
from cfcclone.vector_env import make_vector_env


def has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def write_video(path: str | Path, frames: list[np.ndarray], fps: int = 30) -> None:
    """RGB frames (H, W, 3) uint8 to a .gif (Pillow) or .mp4 (imageio with ffmpeg)."""
    path = Path(path)
    if not frames:
        raise ValueError("no frames to write")
    if path.suffix not in (".gif", ".mp4"):
        raise ValueError(f"expected a .gif or .mp4 path, got {path}")
    if path.suffix == ".mp4":
        try:
            import imageio.v2 as imageio
        except ImportError:
            raise ValueError(
                "MP4 needs imageio with ffmpeg: pip install 'cfcclone[video]'"
            ) from None
    with atomic_path(path) as tmp:
        if path.suffix == ".gif":
            from PIL import Image

            images = [Image.fromarray(f) for f in frames]
            ms = 10 * max(1, round(100 / fps))  # GIF keeps whole centiseconds
            images[0].save(
                tmp, format="GIF", save_all=True, append_images=images[1:], duration=ms, loop=0
            )
        else:
            imageio.mimwrite(tmp, frames, format="FFMPEG", fps=fps, macro_block_size=1)


@dataclass
class PlayResult:
    """The returns of the episodes played, and the agent's latency per step."""

    returns: list[float]
    step_ms: list[float]
    """Wall time of each act() call, in milliseconds."""
    real_time_ms: float = 1000 * 4 / 60
    """A step's duration in real time: 4 frames of 1/60 s for ALE, the env's dt otherwise."""

    def latency(self) -> str:
        p50, p99 = np.percentile(self.step_ms, [50, 99]) if self.step_ms else (0.0, 0.0)
        return (
            f"agent step {p50:.1f} ms p50, {p99:.1f} ms p99 "
            f"(real time gives a step {self.real_time_ms:.0f} ms)"
        )


class _Timed:
    """An Actor that times the actor it wraps."""

    def __init__(self, actor):
        self.actor, self.ms = actor, []

    def act(self, obs, episode_start, info):
        t0 = time.perf_counter()
        actions = self.actor.act(obs, episode_start, info)
        self.ms.append(1000 * (time.perf_counter() - t0))
        return actions


class Pacer:
    """Sleeps so that successive `wait()` calls are `period` seconds apart (0: never)."""

    def __init__(self, period: float):
        self.period, self.next = period, time.perf_counter() + period

    def wait(self) -> None:
        if self.period <= 0:
            return
        time.sleep(max(0.0, self.next - time.perf_counter()))
        self.next = max(self.next + self.period, time.perf_counter())


def play(
    policy,
    env_config: EnvConfig,
    episodes: int = 1,
    render: Literal["human"] | None = None,
    record: str | Path | None = None,
    seed: int = 0,
    max_steps: int | None = None,
    frame_every: int = 2,
    saliency: Literal["vbp", "gradient"] | None = None,
) -> PlayResult:
    """Play `episodes` with `policy` (a ConvCfC, or an Actor for one env such as an
    `OnnxAgent`) on `env_config`; returns the returns and the agent's step latencies.

    Episode k is reset with seed + k. render="human" opens a window and plays at the game's
    pace (60 frames a second); `record` writes every `frame_every`-th step to a .gif or .mp4
    (about 2x real time).

        from cfcclone import load_policy, play
        loaded = load_policy("checkpoints/breakout_nature.safetensors")
        play(loaded.policy, loaded.env_config, record="breakout.gif", max_steps=500)

    Args:
        episodes: episodes to play.
        render: human opens a window (needs a display).
        record: write a .gif or .mp4 of the play (headless).
        seed: episode k is reset with seed + k.
        max_steps: cut each episode after this many steps.
        frame_every: record every n-th step.
        saliency: record what the policy looks at: each step's frame (as the policy sees it,
            scaled 3x) with its saliency map in red, vbp (VisualBackProp) or gradient.
    """
    if record is not None:
        check_file_target(record)
    if saliency is not None and (record is None or not isinstance(policy, ConvCfC)):
        raise ValueError("--saliency draws a checkpoint's maps into a recording: pass --record")
    if render == "human" and not has_display():
        raise ValueError("--render human needs a display; use --record out.gif to record instead")
    render_mode = "human" if render == "human" else ("rgb_array" if record else None)
    env = make_vector_env(num_envs=1, config=env_config, render_mode=render_mode or "rgb_array")
    if saliency is not None:
        from cfcclone.saliency import SaliencyActor, overlay

        check_policy_matches_env(policy, env.action_meanings, policy.config.action)
        seeing = SaliencyActor(policy, 1, saliency, next(policy.parameters()).device)
        agent = _Timed(seeing)
    else:
        agent = _Timed(
            StatefulAgent.for_env(policy, env) if isinstance(policy, ConvCfC) else policy
        )
    frames, returns = [], []
    # a window plays at the game's pace: frame_skip frames of 1/60 s a step (gymnasium's own
    # human rendering keeps its env's pace)
    period = env_config.frame_skip / 60
    if env_config.kind == "gym":
        period = getattr(env.envs[0].unwrapped, "dt", None) or 1 / 50
    pace = Pacer(period if render == "human" and env_config.kind == "ale" else 0.0)
    try:
        for episode in range(episodes):
            total, steps = 0.0, 0
            for t in rollout(env, agent, seed + episode):
                pace.wait()
                total += float(t.reward[0])
                if record and steps % frame_every == 0:
                    shown = overlay(t.obs[0, -1], seeing.maps[0]) if saliency else None
                    frames.append(env.render()[0] if shown is None else shown)
                steps += 1
                if t.done[0] or (max_steps is not None and steps >= max_steps):
                    break
            returns.append(total)
    finally:
        env.close()
        if saliency is not None:
            seeing.close()
    if record:
        write_video(record, frames, fps=max(1, 30 // frame_every))
    return PlayResult(returns, agent.ms, 1000 * period)
