"""Recurrent DAgger: the aggregated dataset holds the student's states with expert labels."""

import json

import numpy as np
import pytest
import torch

from cfcclone import ConvCfC, PolicyConfig, StatefulAgent
from cfcclone.checkpoint import save_policy
from cfcclone.dagger import DaggerConfig, run_dagger
from cfcclone.data import SequenceDataset, collect
from cfcclone.data.format import list_shards, write_shard
from cfcclone.data.manifest import Manifest
from cfcclone.envs import FIRE_STEPS, EnvConfig, make_env
from cfcclone.experts import make_expert
from cfcclone.labelling import roll_out, round_writer
from cfcclone.models import PolicyConfig as Policy
from cfcclone.training import OptimConfig, TrainConfig, WindowConfig
from cfcclone.vector_env import make_vector_env

SHORT = EnvConfig(max_episode_frames=600)  # 150-step episodes
NOOP, FIRE, RIGHT = 0, 1, 2


def _always(action: int) -> ConvCfC:
    """A student that plays `action` whatever it sees."""
    policy = ConvCfC(PolicyConfig(n_actions=4, encoder="nature", units=8))
    with torch.no_grad():
        policy.rnn.fc.weight.zero_()
        policy.rnn.fc.bias.copy_(torch.nn.functional.one_hot(torch.tensor(action), 4) * 5.0)
    return policy.eval()


def _replay(seed: int, steps: int):
    """One env of the vector env, replayed alone: the student's states, the tracker's labels
    of them and what ALE executed, where the student always waits (NOOP)."""
    env, expert = make_env(**SHORT.to_dict()), make_expert("tracker", "breakout")
    obs, info = env.reset(seed=seed)
    frames, labels, executed, start = [], [], [], True
    for _ in range(steps):
        label = expert.act(obs[None], np.array([start]), {"ram": info["ram"][None]})[0]
        frames.append(obs[-1])
        obs, _, term, trunc, info = env.step(NOOP)
        labels.append(info["action"] if info["action"] != NOOP else label)
        executed.append(info["action"])
        start = False
        if term or trunc:
            break
    return np.stack(frames), np.array(labels), np.array(executed)


def test_the_aggregated_data_holds_the_students_states_with_expert_labels(tmp_path):
    n, labels, seed = 2, 2 * 180, 11
    env = make_vector_env(num_envs=n, config=SHORT, ram=True)
    expert = make_expert("tracker", "breakout", num_envs=n)
    recorder = round_writer(tmp_path, 1, n)
    stats = roll_out(_always(NOOP), expert, env, labels, beta=0.0, seed=seed, writer=recorder)
    env.close()
    assert stats["labels"] == labels
    shards = {p.name: p for p in list_shards(tmp_path)}
    # each env played one (truncated) episode, then the start of the next, cut at round's end
    assert sorted(shards) == [f"r01-e{i:03d}-{k:05d}" for i in range(n) for k in range(2)]
    for i in range(n):
        frames = np.load(shards[f"r01-e{i:03d}-00000"] / "frames.npy")
        actions = np.load(shards[f"r01-e{i:03d}-00000"] / "actions.npy")
        executed = np.load(shards[f"r01-e{i:03d}-00000"] / "executed.npy")
        want_frames, want_labels, want_executed = _replay(seed + i, 1000)
        assert 100 < len(frames) == len(want_frames) <= 150
        np.testing.assert_array_equal(frames, want_frames)  # the states the student visited
        np.testing.assert_array_equal(actions, want_labels)  # labelled by the expert
        np.testing.assert_array_equal(executed, want_executed)  # what the student played
        assert set(executed.tolist()) == {NOOP, FIRE} and (executed != actions).any()
        assert actions[:FIRE_STEPS].tolist() == [1] * FIRE_STEPS  # the served FIRE, as collected
        meta = json.loads((shards[f"r01-e{i:03d}-00001"] / "meta.json").read_text())
        assert meta["steps"] == 180 - len(frames) and meta["segments"][0]["complete"] is False
        assert all(s["split"] == "train" for s in meta["segments"])
    # the tracker agrees with a waiting student exactly where it says NOOP
    agree = np.mean([(_replay(seed + i, 1000)[1][FIRE_STEPS:] == NOOP).mean() for i in range(n)])
    assert 0.05 < agree < 0.95 and abs(stats["agreement"] - agree) < 0.1


def test_a_checkpoint_expert_labels_asynchronous_rollouts_as_synchronous_ones(tmp_path):
    """A checkpoint expert plays from the frames, so its rounds step asynchronously: the shards
    equal those of synchronous stepping, labelled with its action."""
    shards = []
    for batch in (4, 2):
        env = make_vector_env(num_envs=4, batch_size=batch, config=SHORT)
        expert = StatefulAgent(_always(RIGHT), 4)
        out = tmp_path / f"batch{batch}"
        stats = roll_out(_always(NOOP), expert, env, 4 * 160, 0.0, 7, round_writer(out, 1, 4))
        env.close()
        assert stats["agreement"] == 0.0 and stats["labels"] == 4 * 160
        shards.append({p.name: p for p in list_shards(out)})
    assert sorted(shards[0]) == sorted(shards[1]) and len(shards[0]) >= 4
    for name, path in shards[0].items():
        for part in ("frames.npy", "actions.npy", "rewards.npy"):
            np.testing.assert_array_equal(
                np.load(path / part), np.load(shards[1][name] / part), err_msg=f"{name} {part}"
            )
        actions = np.load(path / "actions.npy")  # the expert's label, or the FIRE that served
        assert set(actions.tolist()) == {FIRE, RIGHT}
        runs = np.diff(np.flatnonzero(np.diff(np.r_[0, actions == FIRE, 0])))[::2]
        assert (runs == FIRE_STEPS).all()  # FIRE only where a serve was forced


def test_beta_one_plays_the_expert(tmp_path):
    env = make_vector_env(num_envs=1, config=SHORT, ram=True)
    expert = make_expert("tracker", "breakout", num_envs=1)
    stats = roll_out(_always(NOOP), expert, env, 150, 1.0, 4, round_writer(tmp_path, 1, 1))
    env.close()
    # replay the tracker alone from the same seed: the same states and the same actions
    env, tracker = make_env(**SHORT.to_dict()), make_expert("tracker", "breakout")
    obs, info = env.reset(seed=4)
    frames, wanted, served, start = [], [], [], True
    for _ in range(150):
        frames.append(obs[-1])
        a = tracker.act(obs[None], np.array([start]), {"ram": info["ram"][None]})[0]
        obs, _, term, trunc, info = env.step(int(a))
        wanted.append(a)
        served.append(info["action"] != a)  # the env's FIRE replaced the action
        start = False
    recorded = np.load(list_shards(tmp_path)[0] / "frames.npy")
    np.testing.assert_array_equal(recorded, np.stack(frames))
    # the waiting student agrees with the tracker exactly where it waits, served steps aside
    wanted, served = np.array(wanted), np.array(served)
    assert served.sum() >= 2
    assert stats["agreement"] == pytest.approx(np.mean(wanted[~served] == NOOP))


def _tiny(tmp_path, **kw):
    train = TrainConfig(
        policy=Policy(encoder="nature", units=8),
        optim=OptimConfig(lr=1e-3),
        window=WindowConfig(seq_len=8),
        batch=4,
        epochs=1,
        batches_per_epoch=2,
        eval_episodes=1,
        eval_envs=1,
        progress=False,
    )
    base = dict(
        out=str(tmp_path / "dagger"),
        expert="tracker",
        rounds=2,
        labels_per_round=120,
        envs=2,
        train=train,
        init_epochs=1,
        round_eval_episodes=1,
    )
    return DaggerConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def tracker_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("dagger") / "expert"
    collect(out, "breakout", "tracker", 300, envs=1, progress=False, max_episode_frames=600)
    return out


@pytest.mark.slow
def test_rounds_grow_the_dataset_and_resume_after_a_crash(tracker_data, tmp_path):
    config = _tiny(tmp_path, init=str(tracker_data), rounds=1)
    rows = run_dagger(config, progress=False)
    out = tmp_path / "dagger"
    assert [r["round"] for r in rows] == [1] and rows[0]["labels"] == 300 + 120
    assert rows[0]["beta"] == 0.5 and 0 <= rows[0]["agreement"] <= 1
    with pytest.raises(FileExistsError, match="pass --resume"):
        run_dagger(config, progress=False)
    # a crash in round 2 left a shard behind: resume drops it and plays round 2 again
    frames = np.zeros((3, 84, 84), np.uint8)
    from cfcclone.data.format import Segment

    write_shard(
        out / "data", "r02-e000-00000", frames, np.zeros(3), np.zeros(3), [Segment(0, 0, 3)]
    )
    rows = run_dagger(
        _tiny(tmp_path, init=str(tracker_data), rounds=2), resume=True, progress=False
    )
    assert [r["round"] for r in rows] == [2] and rows[0]["beta"] == 0.25
    assert rows[0]["labels"] == 300 + 2 * 120
    data = SequenceDataset(out / "data", seq_len=1, split="all")
    assert data.steps == 300 + 2 * 120 == Manifest.read(out / "data").steps
    names = [p.name for p in list_shards(out / "data")]
    assert sum(n.startswith("r01-") for n in names) == sum(n.startswith("r02-") for n in names)
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["round"] for r in lines] == [1, 2]
    assert json.loads((out / "dagger.json").read_text())["rounds_done"] == 2
    assert (out / "round02" / "best.safetensors").exists()


@pytest.mark.slow
def test_init_from_a_checkpoint_and_bad_inits(tracker_data, tmp_path):
    ckpt = tmp_path / "student.safetensors"
    save_policy(ckpt, _always(NOOP), SHORT)
    rows = run_dagger(_tiny(tmp_path, init=str(ckpt), rounds=1), progress=False)
    assert rows[0]["labels"] == 120  # no expert data before the first round
    config = _tiny(
        tmp_path, init=str(ckpt), data=str(tracker_data), rounds=1, out=str(tmp_path / "w")
    )
    rows = run_dagger(config, progress=False)
    assert rows[0]["labels"] == 300 + 120  # the expert data, then the round's
    assert SequenceDataset(tmp_path / "w" / "data", seq_len=1, split="all").steps == 420
    other = tmp_path / "other.safetensors"  # default episode length: not tracker_data's
    save_policy(other, _always(NOOP), EnvConfig())
    with pytest.raises(ValueError, match="recorded with other preprocessing than"):
        run_dagger(
            _tiny(tmp_path, init=str(other), data=str(tracker_data), out=str(tmp_path / "v"))
        )
    assert not list((tmp_path / "v" / "data").glob("shards/*"))  # refused before any link
    with pytest.raises(ValueError, match="--data goes with a checkpoint --init"):
        run_dagger(
            _tiny(tmp_path, init=str(tracker_data), data=str(tracker_data), out=str(tmp_path / "z"))
        )
    with pytest.raises(ValueError, match="holds tracker breakout data; DAgger labels with the pl"):
        run_dagger(
            _tiny(tmp_path, init=str(tracker_data), expert="scripted", out=str(tmp_path / "x"))
        )
    pong = tmp_path / "pong.safetensors"
    save_policy(
        pong, ConvCfC(PolicyConfig(n_actions=6, encoder="nature", units=8)), EnvConfig("pong")
    )
    with pytest.raises(ValueError, match="the tracker expert plays breakout, not 'pong'"):
        run_dagger(_tiny(tmp_path, init=str(pong), out=str(tmp_path / "y")))


@pytest.mark.slow
def test_resume_from_another_directory(tracker_data, tmp_path, monkeypatch):
    """dagger.json keeps the student's path relative to the run: the run resumes from
    anywhere, and can be moved."""
    (tmp_path / "a").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    config = _tiny(tmp_path, init=str(tracker_data), rounds=1, out="run")
    run_dagger(config, progress=False)
    state = json.loads((tmp_path / "a" / "run" / "dagger.json").read_text())
    assert state["student"] == "round01/best.safetensors"
    (tmp_path / "a" / "run").rename(tmp_path / "moved")
    monkeypatch.chdir(tmp_path)
    moved = _tiny(tmp_path, init=str(tracker_data), rounds=2, out=str(tmp_path / "moved"))
    rows = run_dagger(moved, resume=True, progress=False)
    assert [r["round"] for r in rows] == [2]
