"""Shared fixtures. Everything runs on CPU in seconds."""

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

torch.set_num_threads(2)

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "ncps_tutorial.py"


@pytest.fixture(scope="session")
def tutorial():
    """The NCP tutorial's own module (../shared/reference/ncps_tutorial.py), where present."""
    if not REFERENCE.exists():
        pytest.skip(f"tutorial reference not found at {REFERENCE}")
    spec = importlib.util.spec_from_file_location("ncps_tutorial", REFERENCE)
    module = importlib.util.module_from_spec(spec)
    sys.modules["ncps_tutorial"] = module
    spec.loader.exec_module(module)
    return module
