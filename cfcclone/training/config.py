"""TrainConfig: everything a training run needs, nested and saved whole in every checkpoint.

`TrainConfig` holds the policy's architecture (`PolicyConfig`), the optimiser (`OptimConfig`)
and the training windows (`WindowConfig`), then the run's own settings. It is validated when
built, written into every checkpoint and the resume state, and read back by `train --init`,
`dagger` and `--resume`, so a run can be fine-tuned or continued from its files alone.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

from cfcclone.config import Config, check
from cfcclone.models import PolicyConfig

Schedule = Literal["constant", "cosine"]
ClassWeights = Literal["none", "balanced", "sqrt"]
Horizon = Literal["zero", "burn-in", "stored"]
Amp = Literal["auto", "bf16", "off"]


@dataclass(frozen=True)
class OptimConfig(Config):
    """Adam, its learning-rate schedule, the loss weights and gradient clipping."""

    lr: float = 1e-4
    """Peak learning rate of Adam."""
    warmup: int = 0
    """Steps over which the learning rate rises linearly to lr (0: none). Without it, lr 1e-3
    blew the nature features up in the first 50 steps of one seed in three, and that ConvCfC
    never left the majority action."""
    schedule: Schedule = "constant"
    """The learning rate after the warmup: constant, or cosine decay to 0 at the last step."""
    class_weights: ClassWeights = "none"
    """Cross-entropy weights per action: none, balanced (inverse frequency) or sqrt (its
    square root)."""
    grad_clip: float = 1.0
    """Clip the gradient's global norm to this."""

    def __post_init__(self):
        self.check_choices()
        check(self.lr >= 0, f"expected lr >= 0, got {self.lr}")
        check(self.warmup >= 0, f"expected warmup >= 0 steps, got {self.warmup}")
        check(self.grad_clip > 0, f"expected grad_clip > 0, got {self.grad_clip}")


@dataclass(frozen=True)
class WindowConfig(Config):
    """The training windows: their length, and how their recurrent state begins."""

    seq_len: int = 32
    """Steps per training window (BPTT length)."""
    horizon: Horizon = "zero"
    """A window's initial state: zero (as the tutorial), burn-in (the first burn_in steps only
    warm the state, as in R2D2) or stored (truncated BPTT: each batch row plays whole episodes,
    its state carried from one window to the next)."""
    burn_in: int = 8
    """Steps that only warm the state, with horizon burn-in."""

    def __post_init__(self):
        self.check_choices()
        check(self.seq_len >= 1, f"expected seq_len >= 1, got {self.seq_len}")
        check(
            self.horizon != "burn-in" or 0 < self.burn_in < self.seq_len,
            f"expected 0 < burn_in < seq_len ({self.seq_len}), got {self.burn_in}",
        )


@dataclass(frozen=True)
class TrainConfig(Config):
    """A training run: data, model, optimiser, windows and evaluation."""

    data: str = ""
    """Dataset directory (from cfcclone collect, dagger or import-ncps)."""
    out: str = ""
    """Run directory: best/last checkpoints, metrics.jsonl, train_state.safetensors."""
    policy: PolicyConfig = field(default_factory=lambda: PolicyConfig(encoder="nature"))
    """The ConvCfC (its action count and frame shape come from the dataset)."""
    optim: OptimConfig = field(default_factory=OptimConfig)
    """Adam, its learning-rate schedule, the loss weights and gradient clipping."""
    window: WindowConfig = field(default_factory=WindowConfig)
    """The training windows: their length, and how their recurrent state begins."""
    view_stack: int = 0
    """Observations per stack the policy sees: 0 keeps the data's; another number restacks
    the same stored observations (e.g. 4 states for a feedforward policy on a POMDP)."""
    view_mask: list[int] | None = None
    """The indices of a state vector the policy sees (None: the data's, where it set one,
    else all): one dataset of full states serves full and masked clones alike."""
    batch: int = 32
    """Windows per batch."""
    epochs: int = 10
    """Epochs to train (per round, in dagger)."""
    batches_per_epoch: int = 0
    """Batches per epoch; 0: train steps // (batch * seq_len), one pass in expectation."""
    bn_recalibration: int = 50
    """Training batches whose exact average becomes every BatchNorm's running statistics at
    the end of each epoch, before validation (0: keep the momentum averages, as the tutorial
    does). Only the tutorial encoder has BatchNorm; the weights and the training batches are
    unchanged (the calibration draws from its own seed)."""
    eval_episodes: int = 10
    """Closed-loop episodes after each epoch (0: none; the best checkpoint then follows the
    val loss)."""
    eval_envs: int = 8
    """Vector envs of that evaluation."""
    device: str = "auto"
    """auto (CUDA where there is one), cpu, cuda or cuda:N."""
    amp: Amp = "auto"
    """bf16 autocast of the encoder: auto (where the device is fast at bf16), bf16, or off."""
    init: str | None = None
    """A checkpoint to start from (its weights and PolicyConfig) instead of a fresh policy."""
    val_fraction: float = 0.1
    """Fraction of the episodes held out for validation."""
    verify: bool = False
    """Check the sha256 of every frame when the data is opened (actions and rewards are always
    checked); about 1 s per 100,000 frames."""
    seed: int = 0
    """Seeds the initial weights, the batches and the split."""
    progress: bool = True
    """Show progress bars and the per-epoch line."""
    tensorboard: bool = False
    """Also log each epoch's figures for TensorBoard, in RUN/tensorboard, beside
    metrics.jsonl (needs the tensorboard package: the 'tensorboard' extra)."""

    def __post_init__(self):
        self.check_choices()
        for name in ("batch", "epochs", "eval_envs"):
            value = getattr(self, name)
            check(value >= 1, f"expected {name} >= 1, got {value}")
        for name in ("batches_per_epoch", "eval_episodes", "bn_recalibration", "view_stack"):
            value = getattr(self, name)
            check(value >= 0, f"expected {name} >= 0, got {value}")
        check(
            0 <= self.val_fraction < 1, f"expected val_fraction in [0, 1), got {self.val_fraction}"
        )


def view(env_config, stack: int = 0, obs_mask=None):
    """The data's EnvConfig as a policy sees it: restacked (stack > 0) and masked (obs_mask);
    what its checkpoint stores, so that evaluation plays that view."""
    changes = {"stack": stack} if stack else {}
    if obs_mask is not None:
        changes["obs_mask"] = list(obs_mask)
    return dataclasses.replace(env_config, **changes) if changes else env_config
