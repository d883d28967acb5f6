"""Collection, the shard format and SequenceDataset: stacks, splits, crashes, corruption."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from cfcclone.data import DatasetError, SequenceDataset, collect, expand_stacks
from cfcclone.data.dataset import describe
from cfcclone.data.format import list_shards
from cfcclone.envs import make_env
from cfcclone.experts.follower import follow_ball

SHORT = dict(max_episode_frames=1200)  # 300-step episodes keep the tests fast


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("data") / "ds"
    collect(out, "breakout", follow_ball, frames=1500, envs=1, seed=0, progress=False, **SHORT)
    return out


def test_manifest_records_what_was_collected(dataset_dir):
    m = json.loads((dataset_dir / "manifest.json").read_text())
    assert m["status"] == "complete" and m["format_version"] == 1
    assert m["game"] == "breakout" and m["expert"] == "follow_ball"
    assert m["env"]["sticky_actions"] == 0.25 and m["env"]["max_episode_frames"] == 1200
    assert m["steps"] == 1500 and m["frames_stored"] == 1500
    assert set(m["shards"]) == {p.name for p in list_shards(dataset_dir)}
    assert all(len(h) == 3 for h in m["shards"].values())


def test_dataset_stacks_equal_the_env_observations(dataset_dir):
    ds = SequenceDataset(dataset_dir, seq_len=32, split="all")
    shard, seg = ds.segments[1]
    env = make_env("breakout", **SHORT)
    obs, _ = env.reset(seed=seg.seed)
    actions = ds.actions(1, 0, seg.length)
    seen = [obs]
    for a in actions[:-1]:
        obs, *_ = env.step(int(a))
        seen.append(obs)
    seen = np.stack(seen)
    for start in (0, 1, 2, 40, seg.length - 32):
        frames, acts, episode_start, prev = ds.window(1, start)
        stacks = expand_stacks(torch.from_numpy(frames)[None])[0].numpy()
        np.testing.assert_array_equal(stacks, seen[start : start + 32])
        np.testing.assert_array_equal(acts, actions[start : start + 32])
        assert episode_start.tolist() == [start == 0] + [False] * 31
        # collected data: the labels are what ALE executed, so each step's previous action is
        # the label before it (none at the episode's first step)
        np.testing.assert_array_equal(prev, np.r_[-1, actions][start : start + 32])


def test_items_and_batches_agree(dataset_dir):
    ds = SequenceDataset(dataset_dir, seq_len=16, split="all")
    obs, actions, episode_start = ds[3]
    assert obs.shape == (16, 4, 84, 84) and obs.dtype == torch.uint8
    assert actions.shape == (16,) and actions.dtype == torch.int64
    assert episode_start.dtype == torch.bool
    batch = next(ds.batches(5))
    assert batch.obs.shape == (5, 16, 4, 84, 84)
    assert torch.equal(batch.obs[3], obs) and torch.equal(batch.actions[3], actions)


def test_windows_cover_every_step_and_stay_inside_episodes(dataset_dir):
    ds = SequenceDataset(dataset_dir, seq_len=32, split="all")
    covered = {k: np.zeros(s.length, bool) for k, (_, s) in enumerate(ds.segments)}
    for k, start in ds._windows:
        assert 0 <= start <= ds.segments[k][1].length - 32
        covered[k][start : start + 32] = True
    for c in covered.values():  # segments shorter than a window give none
        assert c.all() if len(c) >= 32 else not c.any()
    batch = ds.sample(64, np.random.default_rng(0))
    assert batch.frames.shape == (64, 35, 84, 84)
    assert not batch.episode_start[:, 1:].any()


def test_split_by_episode_leaks_nothing(dataset_dir):
    train = SequenceDataset(dataset_dir, split="train", val_fraction=0.3)
    val = SequenceDataset(dataset_dir, split="val", val_fraction=0.3)
    everything = SequenceDataset(dataset_dir, split="all")
    key = lambda ds: {(sh, s.frame_offset) for sh, s in ds.segments}  # noqa: E731
    assert key(train) and key(val)
    assert not key(train) & key(val)
    assert key(train) | key(val) == key(everything)
    assert train.steps + val.steps == everything.steps
    # Same seed, same split; another seed, another split.
    assert key(SequenceDataset(dataset_dir, split="val", val_fraction=0.3)) == key(val)
    others = [
        key(SequenceDataset(dataset_dir, split="val", val_fraction=0.3, seed=s)) for s in (1, 2, 3)
    ]
    assert any(o != key(val) for o in others)
    assert all(len(o) == len(key(val)) for o in others)  # the same share, other episodes


def test_describe_counts_actions_and_returns(dataset_dir):
    s = describe(dataset_dir)
    assert s["steps"] == 1500 and sum(s["actions"].values()) == 1500
    assert s["complete_episodes"] >= 3 and s["return_mean"] is not None
    assert 7056 < s["bytes_per_step"] < 7300


def _collect_cmd(out, frames):
    code = (
        "from cfcclone.data import collect; "
        f"collect({str(out)!r}, 'breakout', 'cfcclone.experts.follower:follow_ball', "
        f"frames={frames}, envs=1, seed=3, progress=False, max_episode_frames=1200)"
    )
    return [sys.executable, "-c", code]


@pytest.mark.slow
def test_killed_collection_is_readable_and_resume_completes_it(tmp_path):
    whole, crashed = tmp_path / "whole", tmp_path / "crashed"
    same = dict(
        game="breakout", expert="cfcclone.experts.follower:follow_ball", frames=1200, envs=1, seed=3
    )
    collect(whole, **same, progress=False, **SHORT)
    proc = subprocess.Popen(_collect_cmd(crashed, 1200), start_new_session=True)
    deadline = time.time() + 120
    while len(list_shards(crashed)) < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the worker too, wherever it is in its shard
    proc.wait()
    finished = list_shards(crashed)
    assert 2 <= len(finished) < len(list_shards(whole))
    partial = SequenceDataset(crashed, split="all")
    assert partial.steps < 1200
    with pytest.raises(FileExistsError, match="pass --resume"):
        collect(crashed, **same, progress=False, **SHORT)
    collect(crashed, **same, resume=True, progress=False, **SHORT)
    assert not list((crashed / "shards").glob("*.tmp"))
    a, b = list_shards(whole), list_shards(crashed)
    assert [p.name for p in a] == [p.name for p in b]
    for pa, pb in zip(a, b, strict=False):
        for name in ("frames.npy", "actions.npy", "rewards.npy"):
            assert (pa / name).read_bytes() == (pb / name).read_bytes()


def test_resume_refuses_other_settings(dataset_dir):
    with pytest.raises(ValueError, match="cannot resume .*seed is 9"):
        collect(
            dataset_dir,
            "breakout",
            follow_ball,
            frames=1500,
            envs=1,
            seed=9,
            resume=True,
            progress=False,
            **SHORT,
        )


def _copy(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_corrupt_shards_raise_errors_that_name_the_file(dataset_dir, tmp_path):
    ds = _copy(dataset_dir, tmp_path / "ds")
    shard = list_shards(ds)[0]
    frames = shard / "frames.npy"
    frames.write_bytes(frames.read_bytes()[:5000])
    with pytest.raises(DatasetError, match=rf"{shard.name}/frames.npy"):
        SequenceDataset(ds)
    (shard / "meta.json").write_text("{not json")
    with pytest.raises(DatasetError, match=rf"{shard.name}/meta.json: corrupt shard metadata"):
        SequenceDataset(ds)


def _flip(path, offset=-1):
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 0xFF
    path.write_bytes(bytes(raw))


def test_checksums_catch_flipped_bytes(dataset_dir, tmp_path):
    ds = _copy(dataset_dir, tmp_path / "ds")
    _flip(list_shards(ds)[0] / "actions.npy")  # the small arrays are always checked
    with pytest.raises(DatasetError, match="actions.npy: checksum mismatch"):
        SequenceDataset(ds)
    ds = _copy(dataset_dir, tmp_path / "ds2")
    _flip(list_shards(ds)[1] / "frames.npy")  # the frames where verify asks for it
    SequenceDataset(ds)
    with pytest.raises(DatasetError, match="frames.npy: checksum mismatch"):
        SequenceDataset(ds, verify=True)


def test_missing_or_foreign_manifest(tmp_path):
    with pytest.raises(DatasetError, match="no manifest"):
        SequenceDataset(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"format_version": 99}))
    with pytest.raises(DatasetError, match=r"manifest.json: missing fields \['action_meanings'"):
        SequenceDataset(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps([1, 2]))
    with pytest.raises(DatasetError, match="manifest.json: expected a JSON object, got list"):
        SequenceDataset(tmp_path)
    good = {"game": "breakout", "env": {}, "action_meanings": ["NOOP"], "expert": "x"}
    (tmp_path / "manifest.json").write_text(json.dumps({**good, "format_version": 99}))
    with pytest.raises(DatasetError, match="expected format_version 1, got 99"):
        SequenceDataset(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({**good, "colour": 1}))
    with pytest.raises(DatasetError, match=r"unknown fields \['colour'\]"):
        SequenceDataset(tmp_path)


def test_bad_split_and_seq_len():
    with pytest.raises(ValueError, match="unknown split 'test'"):
        SequenceDataset(".", split="test")
    with pytest.raises(ValueError, match="expected seq_len >= 1"):
        SequenceDataset(".", seq_len=0)


def test_a_checkpoint_expert_is_recorded_faithfully(tmp_path):
    from cfcclone import ConvCfC, PolicyConfig, StatefulAgent
    from cfcclone.checkpoint import save_policy
    from cfcclone.envs import FIRE_STEPS, EnvConfig

    torch.manual_seed(0)
    policy = ConvCfC(PolicyConfig(n_actions=4, encoder="nature", units=8)).eval()
    save_policy(tmp_path / "teacher.safetensors", policy, EnvConfig())
    out = tmp_path / "distill"
    collect(
        out, "breakout", str(tmp_path / "teacher.safetensors"), frames=120, envs=1, progress=False
    )
    ds = SequenceDataset(out, seq_len=120, split="all")
    obs, actions, _ = ds[0]
    agent = StatefulAgent(policy, 1)
    replayed = [agent.act(obs[t : t + 1], np.array([t == 0]))[0] for t in range(120)]
    forced = FIRE_STEPS  # the env serves for the agent on the first steps
    assert actions[forced:].tolist() == replayed[forced:]
    assert actions[:forced].tolist() == [1] * forced


def _episode_stacks(ds, k):
    """The stacks of every step of segment k, padded at its start as the env pads at reset."""
    length = ds.segments[k][1].length
    return expand_stacks(torch.from_numpy(ds.frames(k, 0, length))[None])[0]


def test_expand_stacks_pads_a_new_episode_inside_a_window():
    frames = torch.arange(10, dtype=torch.uint8)[None, :, None, None].expand(1, 10, 2, 2)
    start = torch.zeros(1, 7, dtype=torch.bool)
    start[0, 4] = True  # frame 4 + 3 = 7 is the new episode's first frame
    stacks = expand_stacks(frames, start)[0, :, :, 0, 0].tolist()
    assert stacks[:4] == [[0, 1, 2, 3], [1, 2, 3, 4], [2, 3, 4, 5], [3, 4, 5, 6]]
    assert stacks[4:] == [[7, 7, 7, 7], [7, 7, 7, 8], [7, 7, 8, 9]]
    assert torch.equal(expand_stacks(frames), expand_stacks(frames, torch.zeros(1, 7).bool()))


def test_streams_play_whole_episodes_back_to_back(tmp_path):
    from test_ncps_format import write_episodes

    write_episodes(tmp_path, {"a": [(5, None), (9, None)], "b": [(13, None), (3, None)]})
    ds = SequenceDataset(tmp_path, seq_len=4, split="all")
    streams = ds.streams(3, np.random.default_rng(0))
    batches = [streams.next() for _ in range(12)]
    reference = [_episode_stacks(ds, k) for k in range(len(ds.segments))]
    lengths = [s.length for _, s in ds.segments]
    crossed = 0
    for row in range(3):
        obs = torch.cat([b.obs[row] for b in batches])
        actions = torch.cat([b.actions[row] for b in batches])
        start = torch.cat([b.episode_start[row] for b in batches])
        crossed += sum(bool(b.episode_start[row, 1:].any()) for b in batches)
        cuts = torch.nonzero(start)[:, 0].tolist()
        assert cuts[0] == 0  # a stream begins at an episode start: its state is a true one
        for lo, hi in zip(cuts, [*cuts[1:], len(start)], strict=True):
            # each stretch is one episode from its first step, whole unless the stream ends
            k = next(k for k, r in enumerate(reference) if torch.equal(r[: hi - lo], obs[lo:hi]))
            assert hi - lo == lengths[k] or hi == len(start)
            assert actions[lo:hi].tolist() == ds.actions(k, 0, hi - lo).tolist()
            prev = torch.cat([b.prev_actions[row] for b in batches])[lo:hi]
            assert prev.tolist() == [-1, *ds.actions(k, 0, hi - lo - 1).tolist()]
    assert crossed > 0  # some windows ran from one episode into the next


def test_a_shard_keeps_the_executed_actions_beside_the_labels_and_windows_read_them(tmp_path):
    from test_ncps_format import MEANINGS

    from cfcclone.data.format import EpisodeWriter, open_shard
    from cfcclone.data.manifest import Manifest
    from cfcclone.envs import EnvConfig

    writer = EpisodeWriter(tmp_path, 2, lambda env, count: f"e{env}-{count}")
    obs = np.zeros((2, 4, 84, 84), np.uint8)
    labels, executed = np.array([[1, 2], [3, 3], [2, 0], [0, 1]]), np.array([[0, 2], [3, 1]])
    for t in range(2):
        writer.add(obs, labels[t], np.zeros(2), executed=executed[t])
    for t in range(2, 4):
        writer.add(obs[:1], labels[t, :1], np.zeros(1), env_ids=[1], executed=labels[t, :1])
    with pytest.raises(ValueError, match="env 0: executed actions given for some steps"):
        writer.add(obs, labels[0], np.zeros(2), env_ids=[0, 1])
    assert writer.steps(0) == 2 and writer.steps(1) == 4  # neither env took the step
    writer.end(0, complete=True)
    writer.end(1, complete=True)
    meta, arrays = open_shard(tmp_path / "shards" / "e1-0")
    assert arrays["executed"].tolist() == [2, 1, 2, 0]
    assert arrays["actions"].tolist() == [2, 3, 2, 0]
    assert set(meta["sha256"]) == {"frames", "actions", "rewards", "executed"}
    Manifest("breakout", EnvConfig(), MEANINGS, "dagger", source="synthetic").summarized(
        tmp_path
    ).write(tmp_path)
    ds = SequenceDataset(tmp_path, seq_len=2, split="all")
    by_length = sorted(range(len(ds.segments)), key=lambda k: ds.segments[k][1].length)
    short, long = by_length
    assert ds.prev_actions(long, 0, 4).tolist() == [-1, 2, 1, 2]  # executed, not the labels
    assert ds.prev_actions(short, 0, 2).tolist() == [-1, 0]
    assert ds.actions(long, 0, 4).tolist() == [2, 3, 2, 0]


def test_the_writer_keeps_each_newest_frame_not_a_view_of_the_callers_batch(tmp_path):
    """A caller may reuse its observation buffer; each buffered step holds its own 84x84
    frame, not a view that keeps (and follows) the whole (B, stack, 84, 84) batch."""
    from cfcclone.data.format import EpisodeWriter, open_shard

    writer = EpisodeWriter(tmp_path, 2, lambda env, count: f"e{env}-{count}")
    obs = np.zeros((2, 4, 84, 84), np.uint8)
    for t in range(3):
        obs[0, -1], obs[1, -1] = 10 * t, 10 * t + 1  # the same buffer, refilled each step
        writer.add(obs, np.zeros(2), np.zeros(2))
    assert not any(np.shares_memory(frame, obs) for frame in writer.frames[0] + writer.frames[1])
    writer.end(0, complete=True)
    writer.end(1, complete=True)
    for env in range(2):
        frames = open_shard(tmp_path / "shards" / f"e{env}-0")[1]["frames"]
        assert frames[:, 0, 0].tolist() == [env, 10 + env, 20 + env]


def test_streams_refuse_windows_that_do_not_start_episodes(dataset_dir, tmp_path):
    from cfcclone.data.ncps_format import export_ncps, import_ncps

    export_ncps(dataset_dir, tmp_path / "npz", progress=False)
    import_ncps(tmp_path / "npz", tmp_path / "imported", progress=False)
    ds = SequenceDataset(tmp_path / "imported", seq_len=8, split="all")
    with pytest.raises(DatasetError, match="stored-state training needs whole episodes"):
        ds.streams(2, np.random.default_rng(0))
