"""`cfcclone plot RUN`: loss, accuracy and closed-loop return per epoch, from metrics.jsonl."""

from __future__ import annotations

import json
from pathlib import Path

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


def plot_run(run: str | Path, out: str | Path | None = None) -> Path:
    """Write the run's curves as a PNG and return its path. Needs matplotlib (extra 'plot').

    Args:
        run: a run folder (of cfcclone train) holding metrics.jsonl.
        out: where to write the PNG (default RUN/curves.png).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise PlottingUnavailable(
            "plotting needs matplotlib: pip install 'cfcclone[plot]'"
        ) from None
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
