"""Frame-stack encoders: float (B, C, 84, 84) in [0, 1] -> features (B, F).

- `tutorial`: the NCP tutorial's ConvBlock, parameter for parameter, so that a state_dict moves
  between cfcclone's ConvCfC and the tutorial's unchanged.
- `nature`: the DQN Nature CNN (Mnih et al. 2015), about 20x cheaper than `tutorial` on a CPU.
- `impala`: the IMPALA ResNet (Espeholt et al. 2018), which the tutorial's own note recommends.

`nature` and `impala` start from orthogonal weights and zero biases, as in Stable-Baselines3
and CleanRL (gain sqrt(2); 1 for impala, whose residual sums would grow its features to ~5).
With PyTorch's default init the nature features of a Breakout frame came out near 0.01, and a
ConvCfC on them stayed at the majority action for 1,500 steps; orthogonally initialised, it
reached 81% val accuracy in 800. `tutorial` keeps PyTorch's default init, as the tutorial does
(its BatchNorm keeps the features near 0.4).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def orthogonal_init(module: nn.Module, gain: float = 2**0.5) -> nn.Module:
    """Orthogonal weights (gain sqrt(2), for ReLU) and zero biases in every conv and linear."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.orthogonal_(m.weight, gain)
            nn.init.zeros_(m.bias)
    return module


class TutorialConvBlock(nn.Module):
    """Convs 4->64->128->128->256, 5x5 stride 2 padding 2, BatchNorm after conv2 and conv4,
    ReLU, global average pooling. Features: 256."""

    def __init__(self, in_channels: int = 4, screen_size: int = 84):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 5, padding=2, stride=2)
        self.conv2 = nn.Conv2d(64, 128, 5, padding=2, stride=2)
        self.bn2 = nn.BatchNorm2d(128)
        self.conv3 = nn.Conv2d(128, 128, 5, padding=2, stride=2)
        self.conv4 = nn.Conv2d(128, 256, 5, padding=2, stride=2)
        self.bn4 = nn.BatchNorm2d(256)
        self.features = 256

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(x))
        x = F.relu(self.bn2(self.conv2(x)))
        x = F.relu(self.conv3(x))
        x = F.relu(self.bn4(self.conv4(x)))
        return x.mean((-1, -2))


class NatureCNN(nn.Module):
    """Conv 8x8/4 (32), 4x4/2 (64), 3x3/1 (64), then a linear layer to 512 features."""

    def __init__(self, in_channels: int = 4, screen_size: int = 84, features: int = 512):
        super().__init__()
        self.cnn = nn.Sequential(
            nn.Conv2d(in_channels, 32, 8, stride=4),
            nn.ReLU(),
            nn.Conv2d(32, 64, 4, stride=2),
            nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=1),
            nn.ReLU(),
            nn.Flatten(),
        )
        with torch.no_grad():  # measure the flatten size instead of hard-coding 3136
            n_flat = self.cnn(torch.zeros(1, in_channels, screen_size, screen_size)).shape[1]
        self.linear = nn.Sequential(nn.Linear(n_flat, features), nn.ReLU())
        self.features = features
        orthogonal_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.cnn(x))


class _ResidualBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv0 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv1(F.relu(self.conv0(F.relu(x))))


class _ConvSequence(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.res0 = _ResidualBlock(out_channels)
        self.res1 = _ResidualBlock(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(self.conv(x), 3, stride=2, padding=1)
        return self.res1(self.res0(x))


class ImpalaCNN(nn.Module):
    """Three conv sequences (16, 32, 32 channels), each conv + max-pool + 2 residual blocks,
    then ReLU and a linear layer to 256 features."""

    def __init__(self, in_channels: int = 4, screen_size: int = 84, features: int = 256):
        super().__init__()
        layers, c = [], in_channels
        for out in (16, 32, 32):
            layers.append(_ConvSequence(c, out))
            c = out
        self.stacks = nn.Sequential(*layers, nn.ReLU(), nn.Flatten())
        with torch.no_grad():
            n_flat = self.stacks(torch.zeros(1, in_channels, screen_size, screen_size)).shape[1]
        self.linear = nn.Sequential(nn.Linear(n_flat, features), nn.ReLU())
        self.features = features
        orthogonal_init(self, gain=1.0)  # sqrt(2) compounds over the residual blocks

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.stacks(x))


class VectorEncoder(nn.Module):
    """State vectors (B, stack, d_full) float32 -> features (B, hidden): the `mask` indices
    kept (all where None), normalised by the training data's mean and std (buffers, set by
    `set_statistics` and saved in the checkpoint), flattened over the stack, then two
    Linear-ReLU layers."""

    def __init__(self, stack: int, dim: int, hidden: int = 256, mask: list[int] | None = None):
        super().__init__()
        if mask is not None:
            self.register_buffer("mask", torch.tensor(mask, dtype=torch.int64), persistent=False)
        else:
            self.mask = None
        self.register_buffer("obs_mean", torch.zeros(dim))
        self.register_buffer("obs_std", torch.ones(dim))
        self.mlp = nn.Sequential(
            nn.Linear(stack * dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU()
        )
        self.features = hidden

    def set_statistics(self, states) -> None:
        """Mean and std of the seen dimensions over `states` (N, d_full), the std floored at
        1e-3 (a constant dimension stays finite)."""
        x = torch.as_tensor(states, dtype=torch.float32)
        x = x if self.mask is None else x[:, self.mask]
        self.obs_mean.copy_(x.mean(0))
        self.obs_std.copy_(x.std(0).clamp_min(1e-3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x if self.mask is None else x.index_select(-1, self.mask)
        x = (x - self.obs_mean) / self.obs_std
        return self.mlp(x.flatten(1))


ENCODERS = {"tutorial": TutorialConvBlock, "nature": NatureCNN, "impala": ImpalaCNN}


NATURE_CONVS = ((8, 4), (4, 2), (3, 1))
"""The Nature CNN's unpadded convs, (kernel, stride): they set the smallest frame it takes."""


def smallest_frame(name: str) -> int:
    """The smallest screen_size encoder `name` takes: the Nature CNN's unpadded convs need 36
    pixels; the padded tutorial and IMPALA encoders take any."""
    if name != "nature":
        return 1
    size = 1
    while True:
        x = size
        for kernel, stride in NATURE_CONVS:
            x = (x - kernel) // stride + 1 if x >= kernel else 0
        if x >= 1:
            return size
        size += 1


def make_encoder(
    name: str, in_channels: int = 4, screen_size: int = 84, features: int | None = None
) -> nn.Module:
    """Build encoder `name` (`features`: the width of the nature and impala encoders' last
    linear layer, their default where None); a ValueError lists the valid names for an
    unknown one."""
    if name not in ENCODERS:
        raise ValueError(f"unknown encoder {name!r}; expected one of {sorted(ENCODERS)}")
    width = {} if features is None else {"features": features}
    return ENCODERS[name](in_channels=in_channels, screen_size=screen_size, **width)
