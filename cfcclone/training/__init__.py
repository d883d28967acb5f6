"""Training: the nested TrainConfig, and the Trainer that runs it (BPTT over windows)."""

from cfcclone._lazy import lazy_package

lazy_package(
    __name__,
    {
        "OptimConfig": "cfcclone.training.config",
        "TrainConfig": "cfcclone.training.config",
        "Trainer": "cfcclone.training.trainer",
        "TrainingError": "cfcclone.training.trainer",
        "WindowConfig": "cfcclone.training.config",
        "class_weights": "cfcclone.training.steps",
        "resolve_device": "cfcclone.agent",
        "train": "cfcclone.training.trainer",
    },
)

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
