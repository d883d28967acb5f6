"""Shared fixtures. Everything runs on CPU; tests marked slow take more than a few seconds
(`make test-quick` leaves them out)."""

import importlib.util
import os
import sys
from pathlib import Path

import pytest
import torch

from cfcclone.data import collect
from cfcclone.experts.follower import follow_ball

# one torch thread per pytest-xdist worker (two share the two cores), else two
torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else 2)

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "ncps_tutorial.py"


@pytest.fixture(scope="session")
def tutorial_path() -> Path:
    """../shared/reference/ncps_tutorial.py, the tutorial's own pipeline, where present."""
    if not REFERENCE.exists():
        pytest.skip(f"tutorial reference not found at {REFERENCE}")
    return REFERENCE


@pytest.fixture(scope="session")
def tutorial(tutorial_path):
    """The NCP tutorial's own module."""
    spec = importlib.util.spec_from_file_location("ncps_tutorial", tutorial_path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["ncps_tutorial"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def follower_data(tmp_path_factory) -> Path:
    """900 frames of `follow_ball` on breakout in 300-step episodes (seed 1): a small real
    dataset for training, CLI and play tests. Read it; copy it before changing it."""
    out = tmp_path_factory.mktemp("follower") / "ds"
    collect(
        out,
        "breakout",
        follow_ball,
        frames=900,
        envs=1,
        seed=1,
        progress=False,
        max_episode_frames=1200,
    )
    return out
