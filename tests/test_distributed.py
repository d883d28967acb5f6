"""Training on several processes (DDP over gloo, as torchrun starts it): one step of 2 ranks
equals one single-process step over the same global batch; a lost rank stops the run with a
clear error, and --resume completes it."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from cfcclone.data import collect
from cfcclone.data.batch import Batch
from cfcclone.data.format import list_shards
from cfcclone.data.manifest import Manifest
from cfcclone.models import PolicyConfig
from cfcclone.training import TrainConfig, Trainer, WindowConfig
from cfcclone.training.config import OptimConfig


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def recipe(data, out, **changes) -> TrainConfig:
    return TrainConfig(
        data=str(data),
        out=str(out),
        policy=PolicyConfig(encoder="nature"),  # no BatchNorm: its statistics are per rank
        optim=OptimConfig(class_weights="sqrt"),  # the weighted mean over the global batch
        window=WindowConfig(seq_len=8),
        batch=4,
        eval_episodes=0,
        amp="off",  # fp32: a bf16 encoder rounds each rank's half apart from the whole batch
        progress=False,
        **changes,
    )


def one_step(rank, world, port, data, out):
    """Rank `rank` of `world`: draw its share of the batch, take one step, save what it saw."""
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))  # fmt: skip
    torch.set_num_threads(1)
    trainer = Trainer(recipe(data, Path(out) / f"rank{rank}"))
    batch = trainer.train_set.sample(trainer.local_batch, trainer.rng)
    loss, acc = trainer.train_step(batch)
    params = {k: v.detach().numpy() for k, v in trainer.policy.state_dict().items()}
    np.savez(Path(out) / f"rank{rank}.npz", loss=loss, acc=acc, **vars(batch), **params)
    torch.distributed.destroy_process_group()


def test_a_ddp_step_equals_one_process_over_the_same_global_batch(follower_data, tmp_path):
    mp.start_processes(one_step, args=(2, free_port(), str(follower_data), str(tmp_path)),
                       nprocs=2, start_method="spawn")  # fmt: skip
    ranks = [np.load(tmp_path / f"rank{r}.npz") for r in range(2)]
    batch = Batch(*(torch.from_numpy(np.concatenate([r[k] for r in ranks])) for k in
                    ("frames", "actions", "episode_start", "prev_actions")))  # fmt: skip
    single = Trainer(recipe(follower_data, tmp_path / "single"))
    assert single.local_batch == 4 and len(batch.actions) == 4
    loss, acc = single.train_step(batch)
    for r in ranks:
        assert abs(float(r["loss"]) - loss) < 1e-6 and float(r["acc"]) == acc
    worst = 0.0
    for name, value in single.policy.state_dict().items():
        for r in ranks:
            worst = max(worst, float(np.abs(r[name] - value.numpy()).max()))
    assert worst < 1e-6, worst
    # the ranks drew different windows (each its own seed), which together are the batch
    assert not np.array_equal(ranks[0]["frames"], ranks[1]["frames"])


def test_the_global_batch_must_split_evenly(follower_data, tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(ValueError, match="--batch 4 must be a multiple of the 3 processes"):
        Trainer(recipe(follower_data, tmp_path / "run"))


def torchrun(*args, **popen) -> subprocess.Popen:
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
               f"--master_port={free_port()}", "-m", "cfcclone", *map(str, args)]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1", CFCCLONE_DIST_TIMEOUT="60")
    return subprocess.Popen(command, env=env, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, **popen)  # fmt: skip


def rank_pid(parent: int, rank: int) -> int | None:
    """The pid of the torchrun worker of `rank` under the agent `parent`."""
    for pid in os.listdir("/proc"):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except (OSError, ValueError):
            continue
        if int(stat[1]) == parent and f"RANK={rank}".encode() in environ:
            return int(pid)
    return None


@pytest.mark.slow
def test_a_killed_rank_stops_the_run_and_resume_completes_it(follower_data, tmp_path):
    run = tmp_path / "run"
    options = ["--data", follower_data, "--out", run, "--batch", 4, "--seq-len", 8,
               "--batches-per-epoch", 15, "--eval-episodes", 0]  # fmt: skip
    job = torchrun("train", *options, "--epochs", 3)
    metrics = run / "metrics.jsonl"
    deadline = time.monotonic() + 240
    while not (metrics.exists() and metrics.read_text().strip()) and job.poll() is None:
        assert time.monotonic() < deadline, "no epoch finished"
        time.sleep(0.2)
    victim = rank_pid(job.pid, 1)
    assert victim is not None, job.communicate()[0]
    os.kill(victim, signal.SIGKILL)
    out, _ = job.communicate(timeout=120)  # the survivors exit, they do not hang
    assert job.returncode != 0, out
    assert "another rank is gone or failed" in out or "exitcode  : -9" in out, out
    rows = metrics.read_text().splitlines()
    assert 1 <= len(rows) < 3
    job = torchrun("train", "--out", run, "--resume", "--epochs", 3)
    out, _ = job.communicate(timeout=240)
    assert job.returncode == 0, out
    epochs = [int(line.split(",")[0].split(":")[1]) for line in metrics.read_text().splitlines()]
    assert epochs == [1, 2, 3]


def collect_rank(rank, world, port, out, resume=False):
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))  # fmt: skip
    collect(out, "breakout", "tracker", frames=600, envs=2, seed=3, progress=False,
            resume=resume, max_episode_frames=800)  # fmt: skip
    torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_collection_on_two_ranks_writes_the_shards_of_one_process_and_resumes(tmp_path):
    mp.start_processes(collect_rank, args=(2, free_port(), str(tmp_path / "ranks")), nprocs=2,
                       start_method="spawn")  # fmt: skip
    collect(tmp_path / "one", "breakout", "tracker", frames=600, envs=2, seed=3,
            progress=False, max_episode_frames=800)  # fmt: skip
    ranks, one = Manifest.read(tmp_path / "ranks"), Manifest.read(tmp_path / "one")
    assert ranks.shards == one.shards and len(one.shards) >= 2  # names and sha256 sums
    assert ranks.status == "complete" and ranks.steps == one.steps == 600
    for name in one.shards:
        for f in ("frames.npy", "actions.npy", "rewards.npy", "meta.json"):
            a, b = tmp_path / "ranks" / "shards" / name / f, tmp_path / "one" / "shards" / name / f
            assert a.read_bytes() == b.read_bytes(), (name, f)
    # a crash lost rank 1's last shard: --resume on 2 ranks writes it again, the same bytes
    last = sorted(n for n in one.shards if n.startswith("w001-"))[-1]
    shutil.rmtree(tmp_path / "ranks" / "shards" / last)
    mp.start_processes(collect_rank, args=(2, free_port(), str(tmp_path / "ranks"), True),
                       nprocs=2, start_method="spawn")  # fmt: skip
    assert Manifest.read(tmp_path / "ranks").shards == one.shards
    for f in ("frames.npy", "actions.npy", "meta.json"):
        a, b = tmp_path / "ranks" / "shards" / last / f, tmp_path / "one" / "shards" / last / f
        assert a.read_bytes() == b.read_bytes()


@pytest.mark.slow
def test_eval_on_two_ranks_shares_the_episodes_and_gathers_them(follower_data, tmp_path):
    run = tmp_path / "run"
    Trainer(recipe(follower_data, run, batches_per_epoch=1, epochs=1)).fit()
    out, _ = torchrun("eval", run / "best.safetensors", "--episodes", 5, "--envs", 2,
                      "--json", tmp_path / "eval.json").communicate(timeout=240)  # fmt: skip
    result = json.loads((tmp_path / "eval.json").read_text())
    assert result["episodes"] == 5 and len(result["lengths"]) == 5, out
    assert out.count("over 5 episodes") == 1  # rank 0 alone reports


@pytest.mark.slow
def test_dagger_on_two_ranks_splits_the_labels_and_writes_the_aggregate_once(tmp_path):
    expert = tmp_path / "expert"
    collect(expert, "breakout", "tracker", 300, envs=1, progress=False, max_episode_frames=600)
    out = tmp_path / "dagger"
    tiny = ["--encoder", "nature", "--units", 8, "--seq-len", 8, "--batch", 4, "--epochs", 1,
            "--batches-per-epoch", 2, "--eval-episodes", 1, "--eval-envs", 1]  # fmt: skip
    job = torchrun("dagger", "--init", expert, "--out", out, "--expert", "tracker",
                   "--rounds", 1, "--labels-per-round", 120, "--envs", 2, "--init-epochs", 1,
                   "--round-eval-episodes", 3, *tiny)  # fmt: skip
    text, _ = job.communicate(timeout=300)
    assert job.returncode == 0, text
    names = [p.name for p in list_shards(out / "data")]
    rank_envs = {n.split("-")[1] for n in names if n.startswith("r01-")}
    assert rank_envs == {"e000", "e001", "e002", "e003"}  # 2 envs of each rank
    assert Manifest.read(out / "data").steps == 300 + 120
    (row,) = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert row["labels"] == 300 + 120 and len(row["returns"]) == 3
    assert text.count("round 1: beta") == 1  # rank 0 alone reports
