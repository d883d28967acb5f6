"""`cfcclone plot RUN`: loss, accuracy and closed-loop return per epoch, from metrics.jsonl."""

from __future__ import annotations

import json
from pathlib import Path

from cfcclone.atomic import atomic_path


class PlottingUnavailable(ValueError):
    """matplotlib is not installed (the 'plot' extra)."""


def read_metrics(run: str | Path) -> list[dict]:
    path = Path(run) / "metrics.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no metrics; is {run} a cfcclone run directory?")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


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
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    series = [
        ("loss", [("train_loss", "train"), ("val_loss", "val")]),
        ("accuracy", [("train_acc", "train"), ("val_acc", "val")]),
        ("closed-loop return", [("return_mean", "mean return")]),
    ]
    for ax, (title, keys) in zip(axes, series, strict=False):
        for key, label in keys:
            pts = [(r["epoch"], r[key]) for r in rows if r.get(key) is not None]
            if pts:
                ax.plot(*zip(*pts, strict=False), marker="o", label=label)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        if ax.lines:
            ax.legend()
    fig.tight_layout()
    out = Path(out) if out else Path(run) / "curves.png"
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return out
