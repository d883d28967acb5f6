"""`cfcclone bench`: cfcclone beside the NCP tutorial's own pipeline, on the same data.

One run collects a small real dataset (a RAM ball follower on breakout), exports it to the
tutorial's npz format and measures: training frames/s (B*T*steps / seconds) of the tutorial's
pipeline and of cfcclone's Trainer (tutorial, nature and impala encoders); closed-loop env
steps/s of the tutorial's one-env loop, of cfcclone's StatefulAgent on N C++ vector envs and of
those envs with random actions and no model (the ceiling); bytes per frame on disk of the
dataset and of its export (KB = 1000 bytes); frames/s of `SequenceDataset.sample` materialized
as (B, T, 4, 84, 84) uint8 stacks; and the peak RSS (MB = 1e6 bytes) of a fresh process reading
every window of a large synthetic dataset, deleted afterwards.

The tutorial is imported from `shared/reference/ncps_tutorial.py` beside the repository (or
`reference=`); where it is missing, its rows are marked skipped. `run_bench` returns a dict:
`figures` (name -> label, value, unit, details), `goals` (ratios and limits, with their parts
and whether each was met), and the settings, machine, versions and command.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import operator
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

import cfcclone

SEQ = 32
"""Window length of every training and sampling figure, as in the tutorial."""
REF_WARMUP = 20
"""Untimed steps of the tutorial's loop before timing, as its rollout command does."""
BUDGET_S = 30.0
"""No further repeat of a rollout starts once its repeats took this long (seconds)."""
RSS_EPISODE = 5_000
"""Frames per synthetic episode (one shard each) in the peak-RSS dataset."""


@dataclass(frozen=True)
class BenchConfig:
    device: str = "auto"
    """auto, cpu, cuda or cuda:N."""
    frames: int = 20_000
    """Frames collected for the training, storage and sampler figures."""
    batch: int = 32
    """Training batch, in windows of SEQ steps."""
    train_steps: int = 3
    """Timed steps, after one warm-up step, of the tutorial and impala encoders."""
    cheap_train_steps: int = 10
    """Timed steps of the nature encoder (about 10x cheaper)."""
    encoders: tuple = ("tutorial", "nature", "impala")
    """cfcclone's encoders to train; the tutorial's pipeline runs where 'tutorial' is here."""
    rollout_steps: int = 500
    """Env steps per timed rollout (a vector step counts num_envs)."""
    envs: tuple = (16, 64)
    """Vector env sizes of cfcclone's rollouts and of the raw ceiling."""
    repeats: int = 3
    """Timed repeats of each rollout; the median is reported."""
    sampler_batches: int = 20
    """Timed sampler batches; the median is reported."""
    rss_frames: int = 200_000
    """Frames of the synthetic dataset read for the peak-RSS figure."""
    threads: int = 0
    """torch threads while measuring; 0 keeps torch's default (one per core)."""


QUICK = BenchConfig(
    frames=1_000,
    batch=8,
    train_steps=1,
    cheap_train_steps=1,
    encoders=("nature",),
    rollout_steps=16,
    envs=(2, 4),
    repeats=1,
    sampler_batches=2,
    rss_frames=10_000,
)
"""Tiny sizes, for tests: seconds, not figures."""


def follow_ball(obs: np.ndarray, info: dict) -> int:
    """The collection expert: FIRE without a ball, else move the paddle (ram[72]) toward the
    ball's x (ram[99]). Breakout actions: 0 NOOP, 1 FIRE, 2 RIGHT, 3 LEFT."""
    ball_x, paddle_x = int(info["ram"][99]), int(info["ram"][72])
    if ball_x == 0:
        return 1
    return 2 if ball_x > paddle_x + 8 else 3 if ball_x < paddle_x - 8 else 0


def default_reference() -> Path:
    """shared/reference/ncps_tutorial.py beside the repository root."""
    root = Path(cfcclone.__file__).resolve().parents[2]
    return root / "shared" / "reference" / "ncps_tutorial.py"


def load_reference(path: Path):
    """The tutorial's module imported from `path`, or None where there is no such file."""
    if not path.is_file():
        return None
    spec = importlib.util.spec_from_file_location("ncps_tutorial", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parse_envs(text: str) -> tuple[int, ...]:
    """'16,64' -> (16, 64)."""
    try:
        envs = tuple(int(x) for x in str(text).split(","))
    except ValueError:
        envs = ()
    if not envs or min(envs) < 1:
        raise ValueError(f"expected --envs as positive integers like 16,64, got {text!r}")
    return envs


def _fig(label: str, value: float | None, unit: str, **details) -> dict:
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


def _repeat(once, repeats: int, budget_s: float) -> list[float]:
    """Rates count/seconds of `once() -> (count, seconds)`, at least one call, at most
    `repeats`, none started after `budget_s` seconds were spent."""
    rates, spent = [], 0.0
    for _ in range(repeats):
        count, seconds = once()
        rates.append(count / seconds)
        spent += seconds
        if spent >= budget_s:
            break
    return rates


def _disk_bytes(path: Path) -> int:
    """Bytes of every file under `path`."""
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def make_data(tmp: Path, frames: int) -> tuple[Path, Path, dict]:
    """Collect `frames` breakout steps with `follow_ball` into tmp/data and export them to the
    tutorial's files in tmp/ncps. Returns both paths and the counts."""
    from cfcclone.data import collect
    from cfcclone.data.ncps_format import export_ncps

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
        {"steps": manifest["steps"], **{f"ncps_{k}": v for k, v in exported.items()}},
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
    return _fig(
        "train: tutorial pipeline, tutorial encoder",
        frames / seconds,
        "frames/s",
        steps=c.train_steps,
        seconds=seconds,
    )


def train_cfcclone(root: Path, encoder: str, steps: int, c: BenchConfig, device, out) -> dict:
    """frames/s of cfcclone's Trainer.train_step over its prefetched batches."""
    from cfcclone.training import TrainConfig, Trainer, _prefetch

    trainer = Trainer(
        TrainConfig(
            data=str(root),
            out=str(out),
            encoder=encoder,
            batch=c.batch,
            seq_len=SEQ,
            lr=1e-4,
            eval_episodes=0,
            progress=False,
            device=str(device),
        )
    )
    trainer.model.train()
    pin = device.type == "cuda"
    draw = lambda: trainer.train_set.sample(c.batch, trainer.rng)  # noqa: E731
    batches = _prefetch(draw, steps + 1, pin)
    trainer.train_step(next(batches))  # warm-up
    _sync(device)
    step_seconds, t0 = [], time.perf_counter()
    for batch in batches:
        t = time.perf_counter()
        trainer.train_step(batch)  # its loss.item() waits for the device
        step_seconds.append(time.perf_counter() - t)
    seconds = time.perf_counter() - t0
    return _fig(
        f"train: cfcclone, {encoder} encoder",
        c.batch * SEQ * steps / seconds,
        "frames/s",
        steps=steps,
        seconds=seconds,
        step_seconds_median=float(np.median(step_seconds)),
    )


def rollout_reference(ref, c: BenchConfig, device: torch.device) -> dict:
    """Median env steps/s of the tutorial's closed loop (one env, one model call a step)."""
    torch.manual_seed(0)
    model = ref.ConvCfC(4).to(device).eval()
    env = ref.make_env("Breakout")
    ref.run_closed_loop(model, env, max_steps=REF_WARMUP)

    def once():
        t0 = time.perf_counter()
        _, steps = ref.run_closed_loop(model, env, max_steps=c.rollout_steps)
        return steps, time.perf_counter() - t0

    try:
        rates = _repeat(once, c.repeats, BUDGET_S)
    finally:
        env.close()
    return _fig("rollout: tutorial loop, 1 env", np.median(rates), "steps/s", repeats=rates)


def rollout_vector(num_envs: int, c: BenchConfig, device, policy=None) -> dict:
    """Median env steps/s of `policy` through a StatefulAgent on `num_envs` C++ envs, or of
    random actions without a model where policy is None (the ceiling)."""
    from cfcclone import StatefulAgent, make_vector_env
    from cfcclone.evaluation import rollout_threads

    env = make_vector_env("breakout", num_envs)
    if policy is None:
        rng = np.random.default_rng(0)
        act = lambda obs, start: rng.integers(0, env.single_action_space.n, num_envs)  # noqa: E731
    else:
        act = StatefulAgent(policy, num_envs, device).act
    state = {"obs": env.reset(seed=0)[0], "start": np.ones(num_envs, dtype=bool)}

    def run(steps: int):
        t0, n = time.perf_counter(), 0
        while n < steps:
            obs, _, terminated, truncated, _ = env.step(act(state["obs"], state["start"]))
            state.update(obs=obs, start=terminated | truncated)
            n += num_envs
        return n, time.perf_counter() - t0

    try:
        with rollout_threads(device):
            run(2 * num_envs)  # warm-up
            rates = _repeat(lambda: run(c.rollout_steps), c.repeats, BUDGET_S)
    finally:
        env.close()
    who = "raw vector env, random actions" if policy is None else "cfcclone agent"
    return _fig(f"rollout: {who}, {num_envs} envs", np.median(rates), "steps/s", repeats=rates)


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
    return _fig("sampler: SequenceDataset.sample(32) stacks", np.median(rates), "frames/s")


def write_synthetic(root: Path, frames: int, episode: int) -> None:
    """A dataset of `frames` frames in episodes of `episode`, tiled from a small random block
    (generating gigabytes with np.random would take longer than reading them)."""
    from cfcclone.data.format import Segment, summarize, write_manifest, write_shard
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
    write_manifest(
        root,
        {
            "game": "breakout",
            "env": EnvConfig().to_dict(),
            "expert": "synthetic",
            "action_meanings": action_meanings("breakout"),
            **summarize(root),
        },
    )


# ru_maxrss is no use here: Linux carries the parent's peak across fork and exec into the
# child's. VmHWM is the peak of the child's own memory map, which exec made new.
_READ_ALL = """
import json, resource, sys, time
from cfcclone.data import SequenceDataset
def kib(key):
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith(key))
ds = SequenceDataset(sys.argv[1], int(sys.argv[2]), "all")
opened, frames, t0 = kib("VmRSS:"), 0, time.perf_counter()
for batch in ds.batches(32):
    obs = batch.obs.contiguous()
    frames += obs.shape[0] * obs.shape[1]
seconds = time.perf_counter() - t0
print(json.dumps({"frames": frames, "seconds": seconds, "windows": len(ds), "opened_kib": opened,
                  "peak_kib": kib("VmHWM:"),
                  "ru_maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def peak_rss(tmp: Path, c: BenchConfig) -> tuple[dict, dict]:
    """Peak RSS (MB, VmHWM) and frames/s of a fresh process reading every window of a
    synthetic dataset of `rss_frames` frames (Linux); the dataset is deleted afterwards."""
    root = tmp / "synthetic"
    try:
        write_synthetic(root, c.rss_frames, RSS_EPISODE)
        done = subprocess.run(
            [sys.executable, "-c", _READ_ALL, str(root), str(SEQ)], capture_output=True, text=True
        )
        if done.returncode:
            raise RuntimeError(f"the reading process failed ({done.returncode}):\n{done.stderr}")
        r = json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(root, ignore_errors=True)
    mb = {k[:-4] + "_mb": r[k] * 1024 / 1e6 for k in ("opened_kib", "peak_kib", "ru_maxrss_kib")}
    label = f"{c.rss_frames:,} frames"
    return (
        _fig(
            f"peak RSS: reading all windows of {label}",
            mb.pop("peak_mb"),
            "MB",
            windows=r["windows"],
            **mb,
        ),
        _fig(
            f"read: all windows of {label}",
            r["frames"] / r["seconds"],
            "frames/s",
            seconds=r["seconds"],
        ),
    )


_OPS = {">=": operator.ge, "<=": operator.le, "<": operator.lt}


def _goal(figs: dict, name: str, num: str, den: str | None, op: str, target) -> dict:
    """figs[num]/figs[den] (or figs[num] alone) checked against `op target` where one is set."""
    keys = [num] if den is None else [num, den]
    found = [figs.get(k) or {"value": None, "skipped": f"{k} not measured"} for k in keys]
    row = {
        "name": name,
        "of": keys,
        "parts": [f["value"] for f in found],
        "value": None,
        "goal": None if target is None else f"{op} {_num(target)}" + ("x" if den else ""),
        "met": None,
    }
    missing = [f["skipped"] for f in found if f["value"] is None]
    if missing:
        return {**row, "skipped": missing[-1]}  # the peer's reason before "not measured"
    row["value"] = row["parts"][0] / row["parts"][1] if den else row["parts"][0]
    if target is not None:
        row["met"] = bool(_OPS[op](row["value"], target))
    return row


def goals(figs: dict, device_type: str, envs) -> list[dict]:
    """The issue's goals, by device: target None where a figure has none there."""
    cpu = device_type == "cpu"
    specs = [
        (
            "train ours/tutorial, tutorial encoder",
            "train/cfcclone-tutorial",
            "train/tutorial-ref",
            ">=",
            1.5 if cpu else 5.0,
        )
    ]
    specs += [
        (
            f"rollout ours/tutorial, {n} envs",
            f"rollout/cfcclone-{n}",
            "rollout/tutorial-ref",
            ">=",
            5.0 if cpu else None,
        )
        for n in envs
    ]
    specs += [
        (
            f"rollout ours (bf16)/tutorial, {n} envs",
            f"rollout/cfcclone-bf16-{n}",
            "rollout/tutorial-ref",
            ">=",
            5.0 if cpu else None,
        )
        for n in envs
        if f"rollout/cfcclone-bf16-{n}" in figs
    ]
    specs += [
        (
            f"rollout ours/raw, {n} envs",
            f"rollout/cfcclone-{n}",
            f"rollout/raw-{n}",
            ">=",
            None if cpu or n < 64 else 0.7,
        )
        for n in envs
    ]
    specs += [
        ("storage ours, KB/frame", "storage/cfcclone", None, "<=", 7.2),
        ("storage tutorial/ours", "storage/tutorial-export", "storage/cfcclone", ">=", None),
        ("sampler, frames/s", "sampler/cfcclone", None, ">=", 20_000),
        ("peak RSS, MB", "rss/peak", None, "<", 1_500),
    ]
    return [_goal(figs, *spec) for spec in specs]


def machine() -> dict:
    """CPU model, core count, GPU name (None without CUDA) and the load average."""
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(
                (line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu
            )
    except OSError:
        pass
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "gpu": gpu,
        "torch_threads": torch.get_num_threads(),
        "load_avg": list(os.getloadavg()),
    }


def versions() -> dict:
    return {
        "python": platform.python_version(),
        "cfcclone": cfcclone.__version__,
        **{
            name: importlib.metadata.version(name)
            for name in ("torch", "ncps", "ale-py", "gymnasium")
        },
    }


def command(c: BenchConfig, quick: bool, reference) -> str:
    """The command line that reruns this benchmark with every setting spelled out."""
    return " ".join(
        ["cfcclone bench"]
        + ["--quick"] * quick
        + [
            f"--device {c.device} --frames {c.frames} --train-steps {c.train_steps}"
            f" --rollout-steps {c.rollout_steps} --envs {','.join(map(str, c.envs))}"
            f" --rss-frames {c.rss_frames} --threads {c.threads}"
        ]
        + [f"--reference {reference}"] * (reference is not None)
    )


def _measure(c: BenchConfig, ref, ref_reason: str, device, tmp: Path, log) -> dict:
    """Every figure, by name."""
    log(f"collecting {c.frames} frames and exporting them to the tutorial's format")
    root, dst, data = make_data(tmp, c.frames)
    figs = {
        f"storage/{name}": _fig(
            f"storage: {label}", _disk_bytes(path) / steps / 1e3, "KB/frame", steps=steps
        )
        for name, label, path, steps in [
            ("cfcclone", "cfcclone dataset", root, data["steps"]),
            ("tutorial-export", "its tutorial export", dst, data["ncps_steps"]),
        ]
    }
    log("sampler")
    figs["sampler/cfcclone"] = sampler(root, c)
    if ref is None or "tutorial" not in c.encoders:
        reason = ref_reason if ref is None else "the tutorial encoder is not in this run"
        figs["train/tutorial-ref"] = _fig(
            "train: tutorial pipeline, tutorial encoder", None, "frames/s", skipped=reason
        )
    else:
        log(f"training the tutorial's pipeline (1 + {c.train_steps} steps)")
        figs["train/tutorial-ref"] = train_reference(ref, dst, c, device)
    for encoder in c.encoders:
        steps = c.cheap_train_steps if encoder == "nature" else c.train_steps
        log(f"training cfcclone's {encoder} encoder (1 + {steps} steps)")
        figs[f"train/cfcclone-{encoder}"] = train_cfcclone(
            root, encoder, steps, c, device, tmp / f"run-{encoder}"
        )
    _rollouts(figs, c, ref, ref_reason, device, log)
    log(f"peak RSS over {c.rss_frames} synthetic frames")
    figs["rss/peak"], figs["rss/read"] = peak_rss(tmp, c)
    return figs


def _rollouts(figs: dict, c: BenchConfig, ref, ref_reason: str, device, log) -> None:
    from cfcclone import ConvCfC, PolicyConfig

    if ref is None:
        figs["rollout/tutorial-ref"] = _fig(
            "rollout: tutorial loop, 1 env", None, "steps/s", skipped=ref_reason
        )
    else:
        log(f"rollout: tutorial loop ({c.rollout_steps} steps)")
        figs["rollout/tutorial-ref"] = rollout_reference(ref, c, device)
    from cfcclone.models.policy import bf16_supported

    torch.manual_seed(0)
    policy = ConvCfC(PolicyConfig(n_actions=4, encoder="tutorial"))
    for n in c.envs:
        log(f"rollout: cfcclone agent and raw env, {n} envs")
        figs[f"rollout/cfcclone-{n}"] = rollout_vector(n, c, device, policy)
        if bf16_supported(device):  # `cfcclone eval --bf16`
            fast = rollout_vector(n, c, device, policy.use_bf16())
            fast["label"] = fast["label"].replace("agent", "agent, bf16 encoder")
            figs[f"rollout/cfcclone-bf16-{n}"] = fast
            policy.use_bf16(False)
        figs[f"rollout/raw-{n}"] = rollout_vector(n, c, device)


def run_bench(quick: bool = False, reference=None, progress: bool = True, **overrides) -> dict:
    """Measure everything (see the module doc); `overrides` are BenchConfig fields, on top of
    the defaults or of QUICK. Returns settings, machine, versions, command, figures, goals."""
    from cfcclone.training import resolve_device

    c = replace(QUICK if quick else BenchConfig(), **overrides)
    device = resolve_device(c.device)
    path = Path(reference) if reference is not None else default_reference()
    ref = load_reference(path)
    threads = torch.get_num_threads()
    torch.set_num_threads(c.threads or threads)
    started, t0 = machine(), time.perf_counter()

    def log(msg: str) -> None:
        if progress:
            print(f"bench [{time.perf_counter() - t0:4.0f} s] {msg}", file=sys.stderr, flush=True)

    try:
        with tempfile.TemporaryDirectory(prefix="cfcclone-bench-") as tmp:
            figs = _measure(c, ref, f"reference not found: {path}", device, Path(tmp), log)
    finally:
        torch.set_num_threads(threads)
    return {
        "command": command(c, quick, reference),
        "device": str(device),
        "settings": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(c).items()},
        "reference": str(path) if ref else None,
        "machine": {**started, "load_avg_after": list(os.getloadavg())},
        "versions": versions(),
        "wall_s": time.perf_counter() - t0,
        "figures": figs,
        "goals": goals(figs, device.type, c.envs),
    }


def _num(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"


def _tables(results: dict) -> list[str]:
    """The figures and the goals as two aligned pipe tables (valid markdown, readable text)."""
    figures = [("figure", "value", "unit", "note")] + [
        (
            f["label"],
            "-" if f["value"] is None else _num(f["value"]),
            f["unit"],
            f"skipped: {f['skipped']}" if "skipped" in f else "",
        )
        for f in results["figures"].values()
    ]
    targets = [("goal", "value", "target", "status")] + [
        (
            g["name"],
            "-" if g["value"] is None else _num(g["value"]) + "x" * (len(g["of"]) == 2),
            g["goal"] or "-",
            "skipped: " + g["skipped"]
            if "skipped" in g
            else "-"
            if g["met"] is None
            else "met"
            if g["met"]
            else "MISSED",
        )
        for g in results["goals"]
    ]
    lines = []
    for rows in (figures, targets):
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        cells = [
            [f"{r[i]:>{w}}" if i == 1 else f"{r[i]:<{w}}" for i, w in enumerate(widths)]
            for r in rows
        ]
        cells.insert(1, ["-" * w for w in widths])
        cells[1][1] = cells[1][1][:-1] + ":"  # right-align the values in markdown too
        lines += ["| " + " | ".join(c) + " |" for c in cells] + [""]
    return lines


def _busy(m: dict) -> list[str]:
    """A warning where other jobs used the CPU as the run began (the load average after it
    counts the run itself): with them, torch's threads wait on each other and a timing can
    come out many times too slow."""
    load = m["load_avg"][0]
    return (
        [
            f"note: the CPU was busy (load average {load:.2f} on {m['cores']} cores at the "
            "start); timings are noisy, rerun or try --threads 1",
            "",
        ]
        if load > 0.5
        else []
    )


def format_table(results: dict) -> str:
    """A headline, then the figures and the goals."""
    m = results["machine"]
    return "\n".join(
        [
            f"cfcclone bench on {results['device']} ({m['cpu']}, {m['cores']} cores, "
            f"GPU {m['gpu'] or 'none'}), {results['wall_s']:.0f} s",
            "",
            *_busy(m),
            *_tables(results),
        ]
    )


def format_markdown(results: dict) -> str:
    """A markdown section: machine, versions, the exact command, then both tables."""
    m, v = results["machine"], results["versions"]
    return "\n".join(
        [
            "## cfcclone bench",
            "",
            f"- Machine: {m['cpu']}, {m['cores']} cores, GPU: {m['gpu'] or 'none'} "
            f"(load average {m['load_avg'][0]:.2f} before, {m['load_avg_after'][0]:.2f} after)",
            "- Versions: " + ", ".join(f"{k} {val}" for k, val in v.items()),
            f"- Device: {results['device']}, wall time {results['wall_s']:.0f} s",
            f"- Command: `{results['command']}`",
            "",
            *_busy(m),
            *_tables(results),
        ]
    )
