"""What a training run reports each epoch: the tutorial's line on the console and, with
`--tensorboard`, TensorBoard scalars beside metrics.jsonl."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _fmt(x, spec: str) -> str:
    return "n/a" if x is None else format(x, spec)


def epoch_line(row: dict) -> str:
    """The tutorial's per-epoch line (val_mae in place of val_acc for Box actions)."""
    if "val_mae" in row:
        score = f"val_mae={_fmt(row['val_mae'], '.4f')}"
    else:
        acc = None if row["val_acc"] is None else 100 * row["val_acc"]
        score = f"val_acc={_fmt(acc, '.2f')}%"
    return (
        f"Epoch {row['epoch']}, train_loss={row['train_loss']:.4g}, "
        f"val_loss={_fmt(row['val_loss'], '.4g')}, {score}, "
        f"mean return {_fmt(row['return_mean'], '.1f')}"
    )


class TensorBoard:
    """An epoch's figures as TensorBoard scalars in `folder` (the episodes' returns as a
    histogram); the writer opens at the first row. A missing tensorboard package is a
    ValueError when it is made, before any training."""

    def __init__(self, folder: Path):
        try:
            import tensorboard  # noqa: F401  (torch's SummaryWriter needs it)
        except ImportError:
            raise ValueError(
                "--tensorboard needs tensorboard: pip install 'cfcclone[tensorboard]'"
            ) from None
        self.folder, self.writer = Path(folder), None

    def log(self, row: dict) -> None:
        if self.writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.folder))
        for key, value in row.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and key != "epoch":
                self.writer.add_scalar(key, value, row["epoch"])
        if row.get("returns"):
            self.writer.add_histogram("returns", np.asarray(row["returns"]), row["epoch"])
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
