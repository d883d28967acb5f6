"""Resuming a run: the TrainConfig stored in its state, the checks that it is the same run, and
the metrics cut back to the epoch it resumes from."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from safetensors import SafetensorError, safe_open

from cfcclone.atomic import atomic_write_text
from cfcclone.checkpoint import CheckpointError
from cfcclone.training.config import TrainConfig

STATE = "train_state.safetensors"
"""The run's resume state: optimizer, epoch, RNG states and the whole TrainConfig."""


def stored_config(run: str | Path) -> TrainConfig:
    """The TrainConfig saved in a run's resume state."""
    path = Path(run) / STATE
    if not path.exists():
        raise FileNotFoundError(
            f"nothing to resume: {path} does not exist (no epoch finished); "
            "start the run again without --resume"
        )
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {})["cfcclone-train-state"])
        return TrainConfig.from_dict(meta["state"]["config"], f"{path} config")
    except (SafetensorError, OSError, KeyError, TypeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: not a cfcclone training state ({e})") from None


ARCHITECTURE = (
    "encoder",
    "units",
    "mode",
    "backbone_units",
    "backbone_layers",
    "mixed_memory",
    "skip_head",
    "prev_action",
)


def check_resume(stored: TrainConfig, given: TrainConfig) -> None:
    """Refuse to resume a run with another model or other data: name the option."""
    for name in ARCHITECTURE:
        old, new = getattr(stored.policy, name), getattr(given.policy, name)
        if old != new:
            flag = "--" + name.replace("_", "-")
            raise ValueError(f"cannot resume {stored.out} with {flag} {new}: the run trains {old}")
    if Path(stored.data).resolve() != Path(given.data).resolve():
        raise ValueError(
            f"cannot resume {stored.out} on {given.data}: the run trains on {stored.data} "
            "(to train on other data, start a new run with --init CHECKPOINT)"
        )


def truncate_metrics(path: Path, epoch: int) -> None:
    """Drop metric rows of epochs after the resumed one (a crash between the two writes) and
    a half-written last line."""
    if not path.exists():
        return
    rows = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            warnings.warn(f"{path}: dropped a line a crash cut short: {line[:60]!r}", stacklevel=2)
            continue
        if row.get("epoch", 0) <= epoch:
            rows.append(line)
    atomic_write_text(path, "".join(r + "\n" for r in rows))
