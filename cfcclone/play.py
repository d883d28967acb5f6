"""`cfcclone play`: one env live, in a window or recorded to a GIF or MP4.

The agent's hidden state is carried through each episode and reset at the next. Recording
renders the emulator's RGB screen (210x160), so it works headless; a window needs a display.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from cfcclone.agent import StatefulAgent
from cfcclone.envs import AtariEnv


def has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def write_video(path: str | Path, frames: list[np.ndarray], fps: int = 30) -> None:
    """RGB frames (H, W, 3) uint8 to a .gif (Pillow) or .mp4 (imageio with ffmpeg)."""
    path = Path(path)
    if not frames:
        raise ValueError("no frames to write")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{path.suffix}")
    if path.suffix == ".gif":
        from PIL import Image

        images = [Image.fromarray(f) for f in frames]
        images[0].save(tmp, save_all=True, append_images=images[1:], duration=1000 // fps, loop=0)
    elif path.suffix == ".mp4":
        try:
            import imageio.v2 as imageio
        except ImportError:
            raise ValueError("MP4 needs imageio[ffmpeg]: pip install 'cfcclone[video]'") from None
        imageio.mimwrite(tmp, frames, fps=fps, macro_block_size=1)
    else:
        raise ValueError(f"expected a .gif or .mp4 path, got {path}")
    os.replace(tmp, path)


def play(
    policy,
    episodes: int = 1,
    render: str | None = None,
    record: str | Path | None = None,
    seed: int = 0,
    max_steps: int | None = None,
    frame_every: int = 2,
) -> list[float]:
    """Play `episodes` with `policy` on its own game; returns the returns.

    render="human" opens a window; `record` writes every `frame_every`-th step to a file.
    """
    if render == "human" and not has_display():
        raise ValueError("--render human needs a display; use --record out.gif to record instead")
    render_mode = "human" if render == "human" else ("rgb_array" if record else None)
    env = AtariEnv(policy.env_config, render_mode=render_mode)
    agent = StatefulAgent.for_env(policy, env)
    frames, returns = [], []
    try:
        for episode in range(episodes):
            obs, _ = env.reset(seed=seed + episode)
            start, total, steps, done = True, 0.0, 0, False
            while not done and (max_steps is None or steps < max_steps):
                action = agent.act(obs[None], np.array([start]))[0]
                obs, reward, terminated, truncated, _ = env.step(int(action))
                total, start, done = total + reward, False, terminated or truncated
                if record and steps % frame_every == 0:
                    frames.append(env.render())
                steps += 1
            returns.append(total)
    finally:
        env.close()
    if record:
        write_video(record, frames, fps=max(1, 30 // frame_every))  # about 2x real time
    return returns
