"""The measurements of `cfcclone bench`, each a figure: a label, a value, a unit, details.

Training frames/s (B*T*steps / seconds) of the tutorial's pipeline and of cfcclone's Trainer;
closed-loop env steps/s of the tutorial's one-env loop (driving its own model, or ours), of
cfcclone's StatefulAgent on N C++ vector envs through the one rollout loop, synchronous and
asynchronous, of those envs with random actions and no model (the ceiling), and of the model
alone at the rollout's batch (the bound where the model is the cost), measured side by side;
frames/s of `SequenceDataset.sample` materialized as (B, T, 4, 84, 84) uint8 stacks; and the
peak RSS (MB = 1e6 bytes) of a fresh process reading every window of a large synthetic
dataset, deleted afterwards. `tutorial` is the tutorial's module, imported by
`cfcclone.bench.load_tutorial` from a path the user gives.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from cfcclone.bench.config import REF_WARMUP, RSS_EPISODE, SEQ, BenchConfig


def figure(label: str, value: float | None, unit: str, **details) -> dict:
    """A figure; value None with details skipped="why" where it was not measured."""
    return {
        "label": label,
        "value": None if value is None else float(value),
        "unit": unit,
        **details,
    }


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def disk_bytes(path: Path) -> int:
    """Bytes of every file under `path`."""
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def make_data(tmp: Path, frames: int) -> tuple[Path, Path, dict]:
    """Collect `frames` breakout steps with `follow_ball` (cfcclone.experts.follower) into
    tmp/data and export them to the
    tutorial's files in tmp/ncps. Returns both paths and the counts."""
    from cfcclone.data import collect
    from cfcclone.data.ncps_format import export_ncps
    from cfcclone.experts.follower import follow_ball

    threads = torch.get_num_threads()  # the in-process collection worker sets one thread
    try:
        manifest = collect(
            tmp / "data", "breakout", follow_ball, frames=frames, envs=1, progress=False
        )
    finally:
        torch.set_num_threads(threads)
    exported = export_ncps(tmp / "data", tmp / "ncps", seq_len=SEQ, progress=False)
    return (
        tmp / "data",
        tmp / "ncps",
        {"steps": manifest.steps, **{f"ncps_{k}": v for k, v in exported.items()}},
    )


def train_reference(ref, dst: Path, c: BenchConfig, device: torch.device) -> dict:
    """frames/s of the tutorial's own loader and loop, timed as its `train` command does."""
    from torch import nn
    from torch.utils.data import DataLoader

    torch.manual_seed(0)
    model = ref.ConvCfC(4).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    criterion = nn.CrossEntropyLoss()
    with warnings.catch_warnings():  # 4 workers on fewer cores is the tutorial's own setting
        warnings.filterwarnings("ignore", "This DataLoader will create")
        loader = DataLoader(
            ref.AtariCloningDataset(dst, "train"), batch_size=c.batch, num_workers=4, shuffle=True
        )
        ref.train_steps(model, criterion, optimizer, loader, 1)  # warm-up
        _sync(device)
        t0 = time.perf_counter()
        frames = ref.train_steps(model, criterion, optimizer, loader, c.train_steps)
        _sync(device)
        seconds = time.perf_counter() - t0
    if frames != c.batch * SEQ * c.train_steps:
        raise RuntimeError(
            f"expected {c.train_steps} tutorial batches of {c.batch}x{SEQ} "
            f"frames, got {frames} frames: too few train files in {dst}"
        )
    return figure(
        "train: tutorial pipeline, tutorial encoder",
        frames / seconds,
        "frames/s",
        steps=c.train_steps,
        seconds=seconds,
    )


def train_cfcclone(root: Path, encoder: str, steps: int, c: BenchConfig, device, out) -> dict:
    """frames/s of cfcclone's Trainer.train_step over its prefetched batches."""
    from cfcclone.models import PolicyConfig
    from cfcclone.training import TrainConfig, Trainer, WindowConfig
    from cfcclone.training.steps import prefetch

    config = TrainConfig(
        data=str(root),
        out=str(out),
        policy=PolicyConfig(encoder=encoder),
        window=WindowConfig(seq_len=SEQ),
        batch=c.batch,
        eval_episodes=0,
        progress=False,
        device=str(device),
    )
    trainer = Trainer(config)
    trainer.policy.train()
    draw = lambda: trainer.train_set.sample(c.batch, trainer.rng)  # noqa: E731
    batches = prefetch(draw, steps + 1, pin=device.type == "cuda")
    trainer.train_step(next(batches))  # warm-up
    _sync(device)
    step_seconds, t0 = [], time.perf_counter()
    for batch in batches:
        t = time.perf_counter()
        trainer.train_step(batch)  # its loss.item() waits for the device
        step_seconds.append(time.perf_counter() - t)
    seconds = time.perf_counter() - t0
    return figure(
        f"train: cfcclone, {encoder} encoder",
        c.batch * SEQ * steps / seconds,
        "frames/s",
        steps=steps,
        seconds=seconds,
        step_seconds_median=float(np.median(step_seconds)),
    )


class TutorialLoopPolicy(torch.nn.Module):
    """A cfcclone ConvCfC behind the tutorial loop's call: frames as floats in [0, 1]
    (1, 1, 4, 84, 84) and hx in, (logits, hx) out, so its loop can drive our checkpoints."""

    def __init__(self, policy):
        super().__init__()
        self.policy = policy

    def forward(self, x: torch.Tensor, hx=None):
        return self.policy(x.mul(255).round_().to(torch.uint8), hx)


def tutorial_loop(ref, model, c: BenchConfig, threads: int):
    """Timed runs `once() -> (steps, seconds)` of the tutorial's closed loop (one env, one model
    call a step) driving `model` in `threads` torch threads (as the tutorial runs: torch's
    default), and a `close()`."""
    env = ref.make_env("Breakout")

    def once(steps: int = c.rollout_steps):
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            t0 = time.perf_counter()
            _, done = ref.run_closed_loop(model, env, max_steps=steps)
            return done, time.perf_counter() - t0
        finally:
            torch.set_num_threads(before)

    once(REF_WARMUP)
    return once, env.close


class RandomActor:
    """Uniform random actions: the raw vector env's ceiling, without a model."""

    def __init__(self, n_actions: int, seed: int = 0):
        self.n_actions, self.rng = n_actions, np.random.default_rng(seed)

    def act(self, obs, episode_start, info) -> np.ndarray:
        return self.rng.integers(0, self.n_actions, len(obs))


def vector_rollout(
    num_envs: int, batch: int, c: BenchConfig, device, policy=None, runtime: str = "auto"
):
    """Timed runs `once() -> (steps, seconds)` of `policy`'s agent (`make_agent` on
    `runtime`, as `cfcclone eval` plays it) on `num_envs` C++ envs stepped `batch` at a time
    (asynchronously where batch < num_envs), or of random actions without a model where
    policy is None (the ceiling); and a `close()`."""
    from cfcclone import make_vector_env
    from cfcclone.rollout import rollout
    from cfcclone.runtime import make_agent

    env = make_vector_env("breakout", num_envs, batch_size=batch)
    if policy is None:
        actor = RandomActor(env.single_action_space.n)
    else:
        actor = make_agent(policy, num_envs, device, runtime)
    steps = rollout(env, actor, seed=0)

    def once():
        t0, count = time.perf_counter(), 0
        while count < c.rollout_steps:
            count += len(next(steps).env_ids)
        return count, time.perf_counter() - t0

    once()  # warm-up
    return once, env.close


def model_alone(policy, batch: int, c: BenchConfig, device, runtime: str = "auto"):
    """Timed runs `once() -> (env steps, seconds)` of the agent's step alone (`make_agent` on
    `runtime`) on `batch` fixed random observations: the rollout's bound where the model is
    the cost."""
    from cfcclone.runtime import make_agent

    agent = make_agent(policy, batch, device, runtime)
    obs = np.random.default_rng(0).integers(0, 256, (batch, 4, 84, 84), dtype=np.uint8)
    start = np.zeros(batch, bool)

    def once():
        t0, count = time.perf_counter(), 0
        while count < c.rollout_steps:
            agent.act(obs, start, None)
            count += batch
        return count, time.perf_counter() - t0

    once()  # warm-up
    return once, lambda: None


def interleaved(runs: dict, repeats: int, budget_s: float) -> dict:
    """Median rates of `runs` (name -> (label, unit, once, close)), measured side by side: each
    round times every run once, so a slow spell of a shared machine hits them all alike. No
    round starts after `budget_s` seconds; every run is closed."""
    rates: dict[str, list[float]] = {name: [] for name in runs}
    t0 = time.perf_counter()
    try:
        for _ in range(repeats):
            for name, (_, _, once, _) in runs.items():
                count, seconds = once()
                rates[name].append(count / seconds)
            if time.perf_counter() - t0 >= budget_s:
                break
    finally:
        for _, _, _, close in runs.values():
            close()
    return {
        name: figure(label, np.median(rates[name]), unit, repeats=rates[name])
        for name, (label, unit, _, _) in runs.items()
    }


def sampler(root: Path, c: BenchConfig) -> dict:
    """Median frames/s of SequenceDataset.sample(32) materialized as full stacks."""
    from cfcclone.data import SequenceDataset

    ds, rng = SequenceDataset(root, SEQ, "train"), np.random.default_rng(0)
    expected = (32, SEQ, 4, 84, 84)
    rates = []
    for i in range(c.sampler_batches + 1):  # the first one warms up
        t0 = time.perf_counter()
        obs = ds.sample(32, rng).obs.contiguous()
        seconds = time.perf_counter() - t0
        if tuple(obs.shape) != expected or obs.dtype != torch.uint8:
            raise RuntimeError(
                f"expected stacks {expected} uint8, got {tuple(obs.shape)} {obs.dtype}"
            )
        if i:
            rates.append(obs.shape[0] * obs.shape[1] / seconds)
    return figure("sampler: SequenceDataset.sample(32) stacks", np.median(rates), "frames/s")


def write_synthetic(root: Path, frames: int, episode: int) -> None:
    """A dataset of `frames` frames in episodes of `episode`, tiled from a small random block
    (generating gigabytes with np.random would take longer than reading them)."""
    from cfcclone.data.format import Segment, write_shard
    from cfcclone.data.manifest import Manifest
    from cfcclone.envs import EnvConfig, action_meanings

    if frames < SEQ:
        raise ValueError(f"expected rss_frames >= {SEQ}, got {frames}")
    rng = np.random.default_rng(0)
    block = rng.integers(0, 256, size=(97, 84, 84), dtype=np.uint8)
    acts = rng.integers(0, 4, size=97).astype(np.uint8)
    for i, first in enumerate(range(0, frames, episode)):
        n = min(episode, frames - first)
        write_shard(
            root,
            f"{i:06d}",
            np.resize(block, (n, 84, 84)),
            np.resize(acts, n),
            np.zeros(n, np.float32),
            [Segment(0, 0, n)],
        )
    meanings = action_meanings("breakout")
    manifest = Manifest("breakout", EnvConfig(), meanings, "synthetic", source="synthetic")
    manifest.summarized(root).write(root)


def peak_rss(tmp: Path, c: BenchConfig) -> tuple[dict, dict]:
    """Peak RSS (MB, VmHWM) and frames/s of a fresh process reading every window of a
    synthetic dataset of `rss_frames` frames (Linux); the dataset is deleted afterwards."""
    root = tmp / "synthetic"
    try:
        write_synthetic(root, c.rss_frames, RSS_EPISODE)
        done = subprocess.run(
            [sys.executable, "-m", "cfcclone.bench.read_all", str(root), str(SEQ)],
            capture_output=True,
            text=True,
        )
        if done.returncode:
            raise RuntimeError(f"the reading process failed ({done.returncode}):\n{done.stderr}")
        r = json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(root, ignore_errors=True)
    mb = {k[:-4] + "_mb": r[k] * 1024 / 1e6 for k in ("opened_kib", "peak_kib", "ru_maxrss_kib")}
    label = f"{c.rss_frames:,} frames"
    return (
        figure(
            f"peak RSS: reading all windows of {label}",
            mb.pop("peak_mb"),
            "MB",
            windows=r["windows"],
            **mb,
        ),
        figure(
            f"read: all windows of {label}",
            r["frames"] / r["seconds"],
            "frames/s",
            seconds=r["seconds"],
        ),
    )
