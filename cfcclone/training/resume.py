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
DAGGER_STATE = "dagger.json"
"""A DAgger run's state (`cfcclone.dagger`): a train run never holds one, and the reverse."""


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
    "features",
    "core",
    "units",
    "wiring",
    "sparsity",
    "ncp",
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


def truncate_metrics(path: Path, epoch: int, last_row: dict | None = None) -> None:
    """Make the metrics hold one row per epoch up to the resumed one: drop rows of later epochs
    (the row is written before the state, so a crash between them leaves one) and a
    half-written line. Where the resumed epoch's row is missing (a run of an older cfcclone,
    which wrote the state first), it is restored from `last_row`, the row stored in
    last.safetensors, with a warning."""
    rows, seen = [], set()
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            warnings.warn(f"{path}: dropped a line a crash cut short: {line[:60]!r}", stacklevel=2)
            continue
        if isinstance(row, dict) and row.get("epoch", 0) <= epoch:
            rows.append(line)
            seen.add(row.get("epoch"))
    if epoch >= 1 and epoch not in seen and last_row and last_row.get("epoch") == epoch:
        lost = f"{path}: epoch {epoch}'s row was lost; restored it from last.safetensors"
        warnings.warn(lost + " (without its per-episode returns)", stacklevel=2)
        rows.append(json.dumps(last_row))
    atomic_write_text(path, "".join(r + "\n" for r in rows))
