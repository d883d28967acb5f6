"""Training: the nested TrainConfig, and the Trainer that runs it (BPTT over windows)."""

from cfcclone.agent import resolve_device
from cfcclone.training.config import OptimConfig, TrainConfig, WindowConfig
from cfcclone.training.steps import class_weights
from cfcclone.training.trainer import Trainer, TrainingError, train

__all__ = [
    "OptimConfig",
    "TrainConfig",
    "Trainer",
    "TrainingError",
    "WindowConfig",
    "class_weights",
    "resolve_device",
    "train",
]
