"""The benchmark's report: goals checked from a goals file, the machine, tables, markdown.

Goals are data, not code: `benchmarks/goals.json` in the repository holds them by device
type, and `cfcclone bench --goals FILE` checks the run's figures against them.
"""

from __future__ import annotations

import importlib.metadata
import json
import operator
import os
import platform
from pathlib import Path

import torch

import cfcclone

_OPS = {">=": operator.ge, "<=": operator.le, "<": operator.lt}


def read_goals(path: str | Path) -> dict:
    """The goals file: {"cpu": [goal, ...], "cuda": [...]}; a ValueError names what is wrong."""
    path = Path(path)
    try:
        spec = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: unreadable goals file ({e})") from None
    for device, goals in spec.items():
        if device == "about":
            continue
        for g in goals:
            if not {"name", "of", "op", "target"} <= set(g) or g["op"] not in _OPS:
                raise ValueError(
                    f"{path}: bad goal {g}; expected name, of, op ({list(_OPS)}) and target"
                )
    return spec


def _num(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"


def _goal(figs: dict, name: str, keys: list[str], op: str, target) -> dict:
    """figs[num]/figs[den] (or figs[num] alone) checked against `op target` where one is set."""
    found = [figs.get(k) or {"value": None, "skipped": f"{k} not measured"} for k in keys]
    row = {
        "name": name,
        "of": keys,
        "parts": [f["value"] for f in found],
        "value": None,
        "goal": None
        if target is None
        else f"{op} {_num(target)}" + ("x" if len(keys) == 2 else ""),
        "met": None,
    }
    missing = [f["skipped"] for f in found if f["value"] is None]
    if missing:
        return {**row, "skipped": missing[-1]}  # the peer's reason before "not measured"
    row["value"] = row["parts"][0] / row["parts"][1] if len(keys) == 2 else row["parts"][0]
    if target is not None:
        row["met"] = bool(_OPS[op](row["value"], target))
    return row


def goals(figs: dict, spec: dict, device_type: str, envs) -> list[dict]:
    """The goals of `spec` for this device type, {n} expanded over `envs`. A goal whose first
    figure this run did not measure is left out."""
    rows = []
    for g in spec.get(device_type, []):
        sizes = envs if "{n}" in g["name"] else [None]
        for n in sizes:
            if n is not None and not g.get("min_envs", 0) <= n <= g.get("max_envs", n):
                continue
            keys = [k.replace("{n}", str(n)) for k in g["of"]]
            if keys[0] in figs:
                rows.append(
                    _goal(figs, g["name"].replace("{n}", str(n)), keys, g["op"], g["target"])
                )
    return rows


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
