"""`cfcclone bench`: cfcclone beside the NCP tutorial's own pipeline, on the same data.

One run collects a small real dataset (`cfcclone.experts.follower.follow_ball` on breakout),
exports it to the tutorial's npz format and measures the figures of `cfcclone.bench.figures`.
The tutorial's pipeline is imported from the file the user gives (`tutorial=`, `--tutorial
PATH`); without one, its rows are skipped with a note. Goals are read from a file too
(`goals=`, `--goals benchmarks/goals.json`). An installed cfcclone never looks outside its own
tree. `run_bench` returns a dict: `figures` (name -> label, value, unit, details), `goals`
(ratios and limits, with their parts and whether each was met), and the settings, machine,
versions and command.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from cfcclone.bench import figures as F
from cfcclone.bench.config import BUDGET_S, BenchConfig
from cfcclone.bench.report import goals, machine, read_goals, versions
from cfcclone.rollout import rollout_threads

__all__ = ["BenchConfig", "load_tutorial", "run_bench"]


def load_tutorial(path: str | Path | None):
    """(the tutorial's module, None) imported from `path`, or (None, why it was skipped)."""
    if path is None:
        return None, "no tutorial given (--tutorial PATH to ncps_tutorial.py)"
    path = Path(path)
    if not path.is_file():
        return None, f"tutorial not found: {path}"
    spec = importlib.util.spec_from_file_location("ncps_tutorial", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, None


def command(c: BenchConfig, quick: bool, tutorial, goals_path) -> str:
    """The command line that reruns this benchmark with every setting spelled out."""
    parts = ["cfcclone bench"] + ["--quick"] * quick
    parts.append(
        f"--device {c.device} --frames {c.frames} --train-steps {c.train_steps}"
        f" --rollout-steps {c.rollout_steps} --envs {' '.join(map(str, c.envs))}"
        f" --rss-frames {c.rss_frames} --threads {c.threads}"
    )
    parts += [f"--tutorial {tutorial}"] * (tutorial is not None)
    parts += [f"--goals {goals_path}"] * (goals_path is not None)
    return " ".join(parts)


def _measure(c: BenchConfig, ref, ref_reason, device, tmp: Path, log) -> dict:
    """Every figure, by name."""
    log(f"collecting {c.frames} frames and exporting them to the tutorial's format")
    root, dst, data = F.make_data(tmp, c.frames)
    figs = {
        f"storage/{name}": F.figure(
            f"storage: {label}", F.disk_bytes(path) / steps / 1e3, "KB/frame", steps=steps
        )
        for name, label, path, steps in [
            ("cfcclone", "cfcclone dataset", root, data["steps"]),
            ("tutorial-export", "its tutorial export", dst, data["ncps_steps"]),
        ]
    }
    log("sampler")
    figs["sampler/cfcclone"] = F.sampler(root, c)
    label = "train: tutorial pipeline, tutorial encoder"
    if ref is None or "tutorial" not in c.encoders:
        reason = ref_reason or "the tutorial encoder is not in this run"
        figs["train/tutorial-ref"] = F.figure(label, None, "frames/s", skipped=reason)
    else:
        log(f"training the tutorial's pipeline (1 + {c.train_steps} steps)")
        figs["train/tutorial-ref"] = F.train_reference(ref, dst, c, device)
    for encoder in c.encoders:
        steps = c.cheap_train_steps if encoder == "nature" else c.train_steps
        log(f"training cfcclone's {encoder} encoder (1 + {steps} steps)")
        figs[f"train/cfcclone-{encoder}"] = F.train_cfcclone(
            root, encoder, steps, c, device, tmp / f"run-{encoder}"
        )
    _rollouts(figs, c, ref, ref_reason, device, log)
    log(f"peak RSS over {c.rss_frames} synthetic frames")
    figs["rss/peak"], figs["rss/read"] = F.peak_rss(tmp, c)
    return figs


ROLLOUT_ENCODERS = ("nature", "tutorial")
"""Encoders of the rollout figures: the fast one, whose rollout the emulator bounds, and the
tutorial's, whose convolutions bound it."""


def _rollouts(figs: dict, c: BenchConfig, ref, ref_reason, device, log) -> None:
    """Rollout figures, measured side by side (see `figures.interleaved`): cfcclone's in one
    torch thread, as `cfcclone eval` runs them, the tutorial's loop in the run's threads."""
    from cfcclone import ConvCfC, PolicyConfig
    from cfcclone.models.policy import bf16_supported
    from cfcclone.runtime import pick_runtime
    from cfcclone.vector_env import default_batch

    runs, threads = {}, torch.get_num_threads()

    def add(name: str, label: str, made) -> None:  # every rollout figure is in steps/s
        runs[name] = (label, "steps/s", *made)

    for n in c.envs:
        add(
            f"rollout/raw-{n}",
            f"rollout: raw vector env, random actions, {n} envs",
            F.vector_rollout(n, n, c, device),
        )
    for encoder in ROLLOUT_ENCODERS:
        torch.manual_seed(0)
        policy = ConvCfC(PolicyConfig(n_actions=4, encoder=encoder)).eval()
        runtime = pick_runtime("auto", policy, device)  # what `cfcclone eval` runs
        for n in c.envs:
            b = default_batch(n)
            add(
                f"rollout/{encoder}-sync-{n}",
                f"rollout: {encoder} ({runtime}), {n} envs, synchronous",
                F.vector_rollout(n, n, c, device, policy),
            )
            add(
                f"rollout/{encoder}-async-{n}",
                f"rollout: {encoder} ({runtime}), {n} envs, batches of {b}",
                F.vector_rollout(n, b, c, device, policy),
            )
            add(
                f"model/{encoder}-{n}",
                f"model alone: {encoder} ({runtime}), batch {b}",
                F.model_alone(policy, b, c, device),
            )
            if runtime != "torch":  # the torch agent beside it
                add(
                    f"rollout/{encoder}-async-torch-{n}",
                    f"rollout: {encoder} (torch), {n} envs, batches of {b}",
                    F.vector_rollout(n, b, c, device, policy, "torch"),
                )
                add(
                    f"model/{encoder}-torch-{n}",
                    f"model alone: {encoder} (torch), batch {b}",
                    F.model_alone(policy, b, c, device, "torch"),
                )
        if ref is not None:
            add(
                f"rollout/tutorial-loop-{encoder}",
                f"rollout: tutorial loop, 1 env, driving cfcclone's {encoder}",
                F.tutorial_loop(ref, F.TutorialLoopPolicy(policy).to(device), c, threads),
            )
    if ref is not None:
        torch.manual_seed(0)
        model = ref.ConvCfC(4).to(device).eval()
        add(
            "rollout/tutorial-ref",
            "rollout: tutorial loop, 1 env, its own model",
            F.tutorial_loop(ref, model, c, threads),
        )
    if bf16_supported(device):  # `cfcclone eval --bf16`
        torch.manual_seed(0)
        policy = ConvCfC(PolicyConfig(n_actions=4, encoder="tutorial")).eval().use_bf16()
        for n in c.envs:
            add(
                f"rollout/tutorial-bf16-{n}",
                f"rollout: tutorial, bf16 encoder, {n} envs",
                F.vector_rollout(n, default_batch(n), c, device, policy),
            )
    log(
        f"rollouts: {len(runs)} figures side by side, {c.repeats} rounds of {c.rollout_steps} steps"
    )
    with rollout_threads(device):
        figs.update(F.interleaved(runs, c.repeats, BUDGET_S))
    if ref is None:
        figs["rollout/tutorial-ref"] = F.figure(
            "rollout: tutorial loop, 1 env, its own model", None, "steps/s", skipped=ref_reason
        )
        for encoder in ROLLOUT_ENCODERS:
            label = f"rollout: tutorial loop, 1 env, driving cfcclone's {encoder}"
            figs[f"rollout/tutorial-loop-{encoder}"] = F.figure(
                label, None, "steps/s", skipped=ref_reason
            )


def run_bench(
    config: BenchConfig | None = None,
    quick: bool = False,
    tutorial=None,
    goals_file: str | Path | None = None,
    progress: bool = True,
) -> dict:
    """Measure everything (see the module doc) with `config` (default: BenchConfig(), or
    BenchConfig.quick() with `quick`). Returns settings, machine, versions, command, figures
    and the goals of `goals_file` (none without one)."""
    from cfcclone.training import resolve_device

    c = config or (BenchConfig.quick() if quick else BenchConfig())
    device = resolve_device(c.device)
    spec = read_goals(goals_file) if goals_file is not None else {}
    ref, ref_reason = load_tutorial(tutorial)
    threads = torch.get_num_threads()
    torch.set_num_threads(c.threads or threads)
    started, t0 = machine(), time.perf_counter()

    def log(msg: str) -> None:
        if progress:
            print(f"bench [{time.perf_counter() - t0:4.0f} s] {msg}", file=sys.stderr, flush=True)

    if ref is None:
        log(f"note: {ref_reason}; the tutorial's rows are skipped")
    try:
        with tempfile.TemporaryDirectory(prefix="cfcclone-bench-") as tmp:
            figs = _measure(c, ref, ref_reason, device, Path(tmp), log)
    finally:
        torch.set_num_threads(threads)
    return {
        "command": command(c, quick, tutorial, goals_file),
        "device": str(device),
        "settings": c.to_dict(),
        "reference": str(tutorial) if ref else None,
        "machine": {**started, "load_avg_after": list(os.getloadavg())},
        "versions": versions(),
        "wall_s": time.perf_counter() - t0,
        "figures": figs,
        "goals": goals(figs, spec, device.type, c.envs),
    }
