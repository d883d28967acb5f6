"""`cfcclone plot RUN`: loss, accuracy and closed-loop return per epoch (or DAgger round), from
metrics.jsonl; `cfcclone plot --wiring CKPT`: a wired policy's neurons and synapses."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from cfcclone.atomic import atomic_path


class PlottingUnavailable(ValueError):
    """matplotlib is not installed (the 'plot' extra)."""


def read_metrics(run: str | Path) -> list[dict]:
    """The rows of RUN/metrics.jsonl; a ValueError names the file and the line of a row that
    is not a JSON object."""
    path = Path(run) / "metrics.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no metrics; is {run} a cfcclone run directory?")
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}, line {n}: not JSON ({e})") from None
        if not isinstance(row, dict):
            raise ValueError(f"{path}, line {n}: expected a JSON object, got {line[:40]!r}")
        rows.append(row)
    return rows


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise PlottingUnavailable(
            "plotting needs matplotlib: pip install 'cfcclone[plot]'"
        ) from None
    return plt


def plot_run(run: str | Path, out: str | Path | None = None, wiring: bool = False) -> Path:
    """Write the run's curves as a PNG and return its path. Needs matplotlib (extra 'plot').

    Args:
        run: a run folder (of cfcclone train or dagger) holding metrics.jsonl; with --wiring,
            a checkpoint.
        out: where to write the PNG (default RUN/curves.png; with --wiring, CKPT's name with
            .wiring.png).
        wiring: draw the checkpoint's wiring (its neurons and synapses) instead of curves.
    """
    if wiring:
        return plot_wiring(run, out)
    plt = _pyplot()
    rows = read_metrics(run)
    # a train run's rows count epochs, a DAgger run's rounds; rows of the other kind (a run
    # folder that holds both) are left out
    x = "epoch" if any("epoch" in r for r in rows) else "round"
    rows = [r for r in rows if isinstance(r.get(x), (int, float))]
    if not rows:
        raise ValueError(f"{Path(run) / 'metrics.jsonl'}: no epoch or round rows to plot")
    box = any("val_mae" in r for r in rows)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    series = [
        ("loss", [("train_loss", "train"), ("val_loss", "val")]),
        ("action |error|", [("train_mae", "train"), ("val_mae", "val")])
        if box
        else ("accuracy", [("train_acc", "train"), ("val_acc", "val"), ("agreement", "agreement")]),
        ("closed-loop return", [("return_mean", "mean return")]),
    ]
    for ax, (title, keys) in zip(axes, series, strict=False):
        for key, label in keys:
            pts = [(r[x], r[key]) for r in rows if r.get(key) is not None]
            if pts:
                ax.plot(*zip(*pts, strict=False), marker="o", label=label)
        ax.set_title(title)
        ax.set_xlabel(x)
        if ax.lines:
            ax.legend()
    _spread(axes[2], rows, x)
    fig.tight_layout()
    out = Path(out) if out else Path(run) / "curves.png"
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return out


def _spread(ax, rows: list[dict], x: str) -> None:
    """The episodes behind each mean return: a band of one std, and each episode's return."""
    pts = [(r[x], r["return_mean"], r.get("return_std") or 0.0, r.get("returns") or [])
           for r in rows if r.get("return_mean") is not None]  # fmt: skip
    if not pts:
        return
    xs, means, stds, episodes = zip(*pts, strict=True)
    low = [m - s for m, s in zip(means, stds, strict=True)]
    high = [m + s for m, s in zip(means, stds, strict=True)]
    ax.fill_between(xs, low, high, alpha=0.2, label="± std")
    ex = [xi for xi, eps in zip(xs, episodes, strict=True) for _ in eps]
    ey = [e for eps in episodes for e in eps]
    if ey:
        ax.scatter(ex, ey, s=6, alpha=0.4, color="gray", label="episodes")
    ax.legend()


def plot_wiring(checkpoint: str | Path, out: str | Path | None = None) -> Path:
    """Draw a wired checkpoint's neurons and synapses as a PNG, in layers from left to right:
    sensory (the encoder's features), inter, command and motor neurons (named by the actions
    they drive); excitatory synapses green, inhibitory red. Returns its path. The graph is
    ncps's own (`Wiring.get_graph`), which the checkpoint's sparsity masks follow."""
    from cfcclone.checkpoint import load_policy
    from cfcclone.models.cores import recurrent_parameters, wiring_of

    checkpoint = Path(checkpoint)
    out = Path(out) if out else checkpoint.with_suffix(".wiring.png")
    policy = load_policy(checkpoint).policy
    wiring = None if policy.rnn is None else wiring_of(policy.rnn)
    if wiring is None:
        raise ValueError(
            f"{checkpoint} has a dense CfC (or no cell): no wiring to draw; "
            "train with --wiring autoncp or ncp"
        )
    plt = _pyplot()
    try:
        import networkx  # noqa: F401  (ncps draws with it)
    except ImportError:
        raise PlottingUnavailable("drawing a wiring needs networkx: pip install networkx") from None
    _, acting = recurrent_parameters(policy.rnn, wiring.input_dim)
    synapses = int(np.abs(wiring.adjacency_matrix).sum())
    sensory = int(np.abs(wiring.sensory_adjacency_matrix).sum())
    fig = plt.figure(figsize=(9, 6))
    handles = _draw_layers(plt, wiring, policy.config.action_meanings)
    c = policy.config
    plt.title(
        f"{checkpoint.name}: {c.core} {c.wiring}, {wiring.input_dim} sensory, "
        f"{wiring.units} neurons, {synapses} synapses (+{sensory} from sensory neurons); "
        f"{acting:,} acting weights",
        fontsize=9,
    )
    plt.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=4, fontsize=8)
    plt.axis("off")
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return out


LAYERS = ("sensory", "inter", "command", "motor")
COLORS = {"sensory": "tab:olive", "inter": "tab:blue", "command": "tab:cyan", "motor": "tab:orange"}


def _draw_layers(plt, wiring, action_meanings):
    """ncps's graph of `wiring` in columns by neuron type; returns the legend's handles."""
    import matplotlib.patches as mpatches
    import networkx as nx

    graph = wiring.get_graph()
    kinds = nx.get_node_attributes(graph, "neuron_type")
    columns = {k: sorted((n for n in graph if kinds[n] == k), key=lambda n: int(n.split("_")[1]))
               for k in LAYERS}  # fmt: skip
    columns = {k: v for k, v in columns.items() if v}
    pos = {}
    for x, nodes in enumerate(columns.values()):
        for i, node in enumerate(nodes):
            pos[node] = (x, 1 - (i + 0.5) / len(nodes))
    for polarity, color in (("excitatory", "tab:green"), ("inhibitory", "tab:red")):
        edges = [(a, b) for a, b, p in graph.edges(data="polarity") if p == polarity]
        nx.draw_networkx_edges(graph, pos, edgelist=edges, edge_color=color, alpha=0.35,
                               arrows=False, width=0.8)  # fmt: skip
    for kind, nodes in columns.items():
        nx.draw_networkx_nodes(graph, pos, nodelist=nodes, node_color=COLORS[kind], node_size=60)
    motors = columns.get("motor", [])
    names = list(action_meanings) or [str(i) for i in range(len(motors))]
    labels = {n: names[int(n.split("_")[1])] for n in motors if int(n.split("_")[1]) < len(names)}
    label_pos = {n: (x + 0.08, y) for n, (x, y) in pos.items() if n in labels}
    nx.draw_networkx_labels(graph, label_pos, labels, font_size=8, horizontalalignment="left")
    return [mpatches.Patch(color=COLORS[k], label=f"{k} ({len(v)})") for k, v in columns.items()]
