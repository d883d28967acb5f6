"""`cfcclone record`, headless: SDL's dummy video driver, key events injected into pygame's
queue at chosen steps; the shards must hold those actions at those steps."""

import sys

import numpy as np
import pygame
import pytest

from cfcclone.data.format import list_shards, open_shard
from cfcclone.data.manifest import Manifest
from cfcclone.envs import action_meanings
from cfcclone.record import action_of, record

NOOP, FIRE, RIGHT, LEFT = range(4)  # breakout's minimal set


@pytest.fixture(autouse=True)
def headless(monkeypatch):
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")


def keys(script: dict):
    """A before_step hook posting {step: [(event type, key), ...]} into pygame's queue."""

    def post(step):
        for kind, key in script.get(step, []):
            pygame.event.post(pygame.event.Event(kind, key=key))

    return post


def down_up(key, first, last):
    return {first: [(pygame.KEYDOWN, key)], last: [(pygame.KEYUP, key)]}


def shards(out):
    return [open_shard(p) for p in list_shards(out)]


def test_injected_keys_are_recorded_at_their_steps_and_esc_keeps_the_episode(tmp_path):
    script = {**down_up(pygame.K_RIGHT, 3, 8), **down_up(pygame.K_a, 10, 12)}
    script[14] = [(pygame.KEYDOWN, pygame.K_SPACE), (pygame.KEYDOWN, pygame.K_LEFT)]
    script[16] = [(pygame.KEYDOWN, pygame.K_ESCAPE)]
    manifest = record(tmp_path / "rec", fps=1000, before_step=keys(script))
    (meta, arrays), = shards(tmp_path / "rec")  # fmt: skip
    expected = [NOOP] * 3 + [RIGHT] * 5 + [NOOP] * 2 + [LEFT] * 2 + [NOOP] * 2 + [LEFT] * 2
    assert arrays["actions"].tolist() == expected  # SPACE+LEFT: breakout has no LEFTFIRE
    assert [s.complete for s in meta["segments"]] == [False]  # stopped mid-episode, kept
    assert (manifest.expert, manifest.source, manifest.status) == ("human", "human", "complete")
    assert manifest.env.fire is False and manifest.steps == 16


def test_each_finished_episode_is_a_shard_and_resume_appends(tmp_path):
    out = tmp_path / "rec"
    script = {**down_up(pygame.K_SPACE, 0, 1), **down_up(pygame.K_d, 4, 6)}
    first = record(out, fps=1000, episodes=2, before_step=keys(script), max_episode_frames=60)
    assert first.episodes_complete == 2 and len(first.shards) == 2
    (_, a0), (_, a1) = shards(out)
    assert a0["actions"][:7].tolist() == [FIRE, NOOP, NOOP, NOOP, RIGHT, RIGHT, NOOP]
    assert (a1["actions"] == NOOP).all()  # keys were released in episode 0
    before = {p.name: open_shard(p)[1]["frames"].copy() for p in list_shards(out)}

    def close_window(step):  # closing the window stops too
        if step == 3:
            pygame.event.post(pygame.event.Event(pygame.QUIT))

    resumed = record(out, fps=1000, resume=True, before_step=close_window, max_episode_frames=60)
    names = [p.name for p in list_shards(out)]
    assert names == ["w000-e000000", "w000-e000001", "w000-e000002"]
    assert all(np.array_equal(open_shard(out / "shards" / n)[1]["frames"], f)
               for n, f in before.items())  # fmt: skip
    assert resumed.steps == first.steps + 3 and resumed.episodes_complete == 2
    seeds = [m["segments"][0].seed for m, _ in shards(out)]
    assert len(set(seeds)) == 3  # episode j has its own seed, across the resume


def test_recording_over_a_dataset_needs_resume(tmp_path):
    stop = keys({0: [(pygame.KEYDOWN, pygame.K_ESCAPE)]})
    record(tmp_path / "rec", fps=1000, before_step=stop)
    with pytest.raises(FileExistsError, match="--resume"):
        record(tmp_path / "rec", fps=1000, before_step=stop)
    with pytest.raises(ValueError, match="cannot resume .* game is 'pong'"):
        record(tmp_path / "rec", "pong", fps=1000, resume=True, before_step=stop)
    assert Manifest.read(tmp_path / "rec").game == "breakout"


def test_keys_make_the_games_combined_actions():
    pong = action_meanings("pong")  # NOOP FIRE RIGHT LEFT RIGHTFIRE LEFTFIRE
    assert pong[action_of({"RIGHT", "FIRE"}, pong)] == "RIGHTFIRE"
    assert pong[action_of({"UP", "LEFT"}, pong)] == "LEFT"  # no UP in pong: the part it has
    assert pong[action_of({"LEFT", "RIGHT"}, pong)] == "NOOP"  # opposite keys cancel
    full = action_meanings("seaquest")
    assert full[action_of({"UP", "LEFT", "FIRE"}, full)] == "UPLEFTFIRE"
    assert full[action_of(set(), full)] == "NOOP"


def test_a_missing_extra_is_named(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pygame", None)  # as if not installed
    with pytest.raises(ValueError, match=r"pip install 'cfcclone\[human\]'"):
        record(tmp_path / "rec")
    assert not (tmp_path / "rec").exists()


def test_no_display_is_a_one_line_error(tmp_path, monkeypatch):
    for name in ("SDL_VIDEODRIVER", "DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValueError, match="record needs a display"):
        record(tmp_path / "rec")
    assert not (tmp_path / "rec").exists()
