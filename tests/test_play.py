"""`play`: a short episode recorded headless, through the one rollout loop."""

import numpy as np
import pytest
import torch
from PIL import Image

from cfcclone import ConvCfC, PolicyConfig
from cfcclone.envs import EnvConfig, make_env
from cfcclone.play import play, write_video

SHORT = EnvConfig(max_episode_frames=200, noop_max=0, sticky_actions=0.0)  # 50 steps exactly


def _policy():
    torch.manual_seed(0)
    return ConvCfC(PolicyConfig(n_actions=4, encoder="nature", units=8)).eval()


def test_a_recorded_episode_has_every_step_and_starts_at_the_reset(tmp_path):
    gif = tmp_path / "clone.gif"
    result = play(_policy(), SHORT, episodes=1, record=gif, seed=4, frame_every=1)
    assert len(result.returns) == 1 and len(result.step_ms) == 50
    with Image.open(gif) as im:
        # GIF merges repeated frames and adds up their durations (30 ms at 30 fps), so the
        # total counts them all
        durations = []
        for i in range(im.n_frames):
            im.seek(i)
            durations.append(im.info["duration"])
            if i == 0:
                first = np.array(im.convert("RGB"))
        assert sum(durations) == 50 * 30 and im.size == (160, 210)
    env = make_env(render_mode="rgb_array", **SHORT.to_dict())
    env.reset(seed=4)
    env.step(1)  # the first step is served (FIRE) whatever the policy says
    np.testing.assert_array_equal(first, env.render())
    env.close()


def test_max_steps_and_episodes(tmp_path):
    result = play(_policy(), SHORT, episodes=2, max_steps=5)
    assert len(result.returns) == 2 and len(result.step_ms) == 10
    assert "ms p50" in result.latency()


def test_bad_paths_and_no_display(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="expected a .gif or .mp4 path"):
        write_video(tmp_path / "x.avi", [np.zeros((2, 2, 3), np.uint8)])
    with pytest.raises(ValueError, match="no frames to write"):
        write_video(tmp_path / "x.gif", [])
    assert not list(tmp_path.iterdir())  # nothing half-written
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(ValueError, match="needs a display"):
        play(_policy(), SHORT, render="human")


def test_the_pacer_keeps_the_games_pace(monkeypatch):
    import time

    from cfcclone.play import Pacer

    pacer, t0 = Pacer(0.02), time.perf_counter()
    for _ in range(10):
        pacer.wait()
    assert time.perf_counter() - t0 >= 0.2 - 1e-3  # 10 steps of 20 ms, never faster
    slept = []
    monkeypatch.setattr(time, "sleep", slept.append)
    free = Pacer(0.0)
    for _ in range(10):
        free.wait()
    assert slept == []  # without a window, play never waits
