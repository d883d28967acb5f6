"""Training: the nested TrainConfig, and the Trainer that runs it (BPTT over windows)."""

from cfcclone.training.config import OptimConfig, TrainConfig, WindowConfig
from cfcclone.training.trainer import Trainer, TrainingError, class_weights, resolve_device, train

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
