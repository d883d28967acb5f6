"""The torch device a name stands for: a leaf module, so that the agent, checkpoints and
training can all resolve a device without importing one another."""

from __future__ import annotations

import torch


def resolve_device(name: str | torch.device) -> torch.device:
    """The torch device for `name`: auto is CUDA where torch sees one, else the CPU; a name
    torch cannot use is a ValueError."""
    name = str(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but torch sees no CUDA device")
    try:
        return torch.device(name)
    except RuntimeError as e:
        raise ValueError(
            f"unknown device {name!r} ({e}); expected auto, cpu, cuda or cuda:N"
        ) from None
