"""ConvCfC: an encoder per frame stack feeding ncps's CfC, forward over (B, T) sequences.

The module does no I/O and keeps no state: the recurrent state goes in and out as `hx`, and
`cfcclone.agent.StatefulAgent` carries it across env steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from ncps.torch import CfC

from cfcclone.config import Config, check
from cfcclone.models.encoders import make_encoder

EncoderName = Literal["tutorial", "nature", "impala"]
CfCMode = Literal["default", "pure", "no_gate"]


def bf16_supported(device: str | torch.device) -> bool:
    """Whether bf16 autocast is fast on `device`: a CUDA GPU with bf16, or a CPU with
    AVX512-BF16 or AMX."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(cpu, name, lambda: False)() for name in checks)


@dataclass(frozen=True)
class PolicyConfig(Config):
    """Everything needed to rebuild a ConvCfC; stored whole in every checkpoint."""

    n_actions: int = field(default=0, metadata={"derived": True})
    """Size of the game's minimal action set (training fills it in from the dataset)."""
    encoder: EncoderName = "tutorial"
    """The frame-stack encoder: the NCP tutorial's ConvBlock, the DQN Nature CNN or IMPALA's
    ResNet."""
    units: int = 64
    """CfC hidden units."""
    mode: CfCMode = "default"
    """CfC mode (ncps): default, pure (no gate) or no_gate."""
    backbone_units: int | None = None
    """Width of the CfC backbone (ncps's default, 128, where unset)."""
    backbone_layers: int | None = None
    """Depth of the CfC backbone (ncps's default, 1, where unset)."""
    mixed_memory: bool = False
    """Add an LSTM memory cell beside the CfC (hx becomes a pair)."""
    skip_head: bool = False
    """Add a linear readout of the encoder's features to the CfC's logits. On the Pong
    planner's data the ConvCfC alone predicted no paddle move in 1,500 steps (3 seeds); with
    this head it learned them as the CNN with a linear head does (scripts/probe_presses.py)."""
    prev_action: bool = False
    """Also feed the CfC (and the skip head) a one-hot of the action ALE executed at the step
    before (zeros at an episode's first step), as R2D2's and IMPALA's recurrent agents take it.
    On the Pong planner's exact state it lifted a DAgger clone from 12.6 to 15.7 at round 5
    (scripts/probe_state.py --prev-action)."""
    stack: int = field(default=4, metadata={"derived": True})
    """Frames per observation (from the env)."""
    screen_size: int = field(default=84, metadata={"derived": True})
    """Frame height and width (from the env)."""
    action_meanings: list[str] = field(default_factory=list, metadata={"derived": True})
    """The env's action names, e.g. ['NOOP', 'FIRE', 'RIGHT', 'LEFT']; empty where unknown."""

    def __post_init__(self):
        self.check_choices()
        for name in ("units", "stack", "screen_size"):
            value = getattr(self, name)
            check(_is_int(value) and value >= 1, f"expected {name} >= 1, got {value!r}")
        check(
            _is_int(self.n_actions) and self.n_actions >= 0,
            f"expected n_actions >= 0, got {self.n_actions!r}",
        )
        for name in ("backbone_units", "backbone_layers"):
            value = getattr(self, name)
            check(
                value is None or (_is_int(value) and value >= 1),
                f"expected {name} >= 1, got {value!r}",
            )
        meanings = self.action_meanings
        check(
            not meanings or len(meanings) == self.n_actions,
            f"expected {self.n_actions} action meanings, got {len(meanings)}: {meanings}",
        )


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _zero_where(hx, mask: torch.Tensor):
    """hx (B, H) or a pair of them, with the rows of mask (B,) bool set to zero."""
    if isinstance(hx, tuple):
        return tuple(_zero_where(h, mask) for h in hx)
    return torch.where(mask[:, None], torch.zeros_like(hx), hx)


class ConvCfC(nn.Module):
    """obs (B, T, stack, 84, 84) uint8, hx -> logits (B, T, n_actions) float, hx.

    hx is (B, units) float, or a pair of them with mixed_memory; None means zeros. The model
    scales uint8 to [0, 1] itself, so uint8 is what travels to the device. Parameter names
    (`conv_block.*`, `rnn.*`) are the NCP tutorial's.
    """

    def __init__(self, config: PolicyConfig):
        super().__init__()
        if config.n_actions < 1:
            raise ValueError(f"expected n_actions >= 1, got {config.n_actions}")
        self.config = config
        self.bf16 = False
        """Whether the encoder runs under bf16 autocast (`use_bf16`)."""
        self.conv_block = make_encoder(config.encoder, config.stack, config.screen_size)
        inputs = self.conv_block.features + config.n_actions * config.prev_action
        self.rnn = CfC(
            inputs,
            config.units,
            proj_size=config.n_actions,
            batch_first=True,
            mixed_memory=config.mixed_memory,
            mode=config.mode,
            backbone_units=config.backbone_units,
            backbone_layers=config.backbone_layers,
        )
        self.skip = nn.Linear(inputs, config.n_actions) if config.skip_head else None

    def check_obs(self, obs: torch.Tensor, ndim: int) -> None:
        """Raise a ValueError unless obs is uint8 with this model's frame shape and `ndim` dims."""
        c = self.config
        frame = (c.stack, c.screen_size, c.screen_size)
        lead = "(B, T, " if ndim == 5 else "(N, "
        if obs.dtype != torch.uint8 or obs.dim() != ndim or tuple(obs.shape[-3:]) != frame:
            raise ValueError(
                f"expected obs {lead}{', '.join(map(str, frame))}) uint8, got "
                f"{tuple(obs.shape)} {str(obs.dtype).replace('torch.', '')}"
                + (
                    "; pass raw uint8 frames, the model scales them"
                    if obs.is_floating_point()
                    else ""
                )
            )

    def use_bf16(self, enabled: bool = True) -> ConvCfC:
        """Run the encoder under bf16 autocast with channels_last convs (about 2x on CPUs with
        AVX512-BF16 and on GPUs); the CfC and its state stay fp32. Not saved in checkpoints."""
        self.bf16 = enabled
        if enabled:
            self.conv_block.to(memory_format=torch.channels_last)
        return self

    def encode(self, obs: torch.Tensor) -> torch.Tensor:
        """obs (B, T, stack, H, W) uint8 -> features (B, T, F) float32."""
        self.check_obs(obs, 5)
        b, t = obs.shape[:2]
        x = obs.reshape(b * t, *obs.shape[2:]).float().div_(255.0)
        if x.device.type == "cpu" and torch.is_grad_enabled():
            # training's convs, forward and backward: 1.7x faster channels_last on AVX2 (fp32)
            x = x.contiguous(memory_format=torch.channels_last)
        if not self.bf16:
            return self.conv_block(x).reshape(b, t, -1)
        x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(x.device.type, dtype=torch.bfloat16):
            return self.conv_block(x).float().reshape(b, t, -1)

    def forward(
        self,
        obs: torch.Tensor,
        hx=None,
        episode_start: torch.Tensor | None = None,
        prev_action: torch.Tensor | None = None,
    ):
        """obs (B, T, stack, H, W) uint8 -> logits (B, T, n_actions), hx.

        episode_start (B, T) bool, optional: the state is zeroed before each step where it is
        True, so a sequence may run across episode boundaries (as the agent's state does).
        prev_action (B, T) int64, for a policy with `prev_action` (ignored by others): the
        action executed at the step before each, -1 where none; it is read as none where
        episode_start is True.
        """
        features = self.encode(obs)
        if self.config.prev_action:
            features = torch.cat([features, self._one_hot(prev_action, episode_start, obs)], -1)
        logits, hx = self._core(features, hx, episode_start)
        return (logits if self.skip is None else logits + self.skip(features)), hx

    def _one_hot(self, prev_action, episode_start, obs) -> torch.Tensor:
        """(B, T, n_actions) float: prev_action one-hot, zeros where -1 or an episode starts."""
        b, t, n = *obs.shape[:2], self.config.n_actions
        if prev_action is None:
            raise ValueError(
                "this policy reads the previous action (prev_action): pass prev_action (B, T)"
            )
        if prev_action.shape != (b, t) or prev_action.dtype != torch.int64:
            raise ValueError(
                f"expected prev_action ({b}, {t}) int64, got {tuple(prev_action.shape)} "
                f"{str(prev_action.dtype).replace('torch.', '')}"
            )
        known = prev_action >= 0
        if episode_start is not None:
            known = known & ~episode_start
        hot = F.one_hot(prev_action.clamp(0, n - 1), n).float()
        return hot * known[..., None]

    def _core(self, features, hx, episode_start):
        """The CfC over features (B, T, F): logits (B, T, n_actions), hx."""
        if episode_start is None:
            return self.rnn(features, hx)
        b, t = features.shape[:2]
        if episode_start.shape != (b, t) or episode_start.dtype != torch.bool:
            raise ValueError(
                f"expected episode_start ({b}, {t}) bool, got {tuple(episode_start.shape)} "
                f"{str(episode_start.dtype).replace('torch.', '')}"
            )
        if hx is None:
            hx = self.initial_state(b, features.device)
        # ncps runs each stretch between reset steps; the state is zeroed where one begins
        inner = [] if t == 1 else (torch.nonzero(episode_start[:, 1:].any(0))[:, 0] + 1).tolist()
        cuts = [0, *inner, t]  # (a single step, the agent's case, needs no host sync)
        pieces = []
        for lo, hi in zip(cuts[:-1], cuts[1:], strict=True):
            hx = _zero_where(hx, episode_start[:, lo])
            logits, hx = self.rnn(features[:, lo:hi], hx)
            pieces.append(logits)
        return torch.cat(pieces, 1), hx

    @torch.inference_mode()
    def predict(
        self,
        observation,
        state=None,
        episode_start=None,
        deterministic: bool = True,
        prev_action=None,
    ):
        """SB3-contrib's recurrent `predict`, in numpy: (actions (N,) int64, next state).

        observation (N, stack, 84, 84) uint8 (or one (stack, 84, 84)); `state` as returned by
        the last call (None: zeros); `episode_start` (N,) bool zeroes those envs' state first.
        `deterministic=False` samples from the softmax. The state is numpy (a pair of arrays
        with mixed memory), so it can be kept anywhere between calls. `prev_action` (N,) int,
        for a policy with `prev_action`: the action the env executed last step (`info["action"]`
        of cfcclone's envs; -1 where none).

            state, start = None, np.ones(n, bool)
            actions, state = policy.predict(obs, state, start)
        """
        obs = torch.as_tensor(np.asarray(observation))
        single = obs.dim() == 3
        obs = obs[None] if single else obs
        n, device = obs.shape[0], next(self.parameters()).device
        start = np.zeros(n, bool) if episode_start is None else np.asarray(episode_start, bool)
        if state is None:
            hx = self.initial_state(n, device)
        else:
            hx = (
                tuple(torch.as_tensor(s, device=device) for s in state)
                if isinstance(state, tuple)
                else torch.as_tensor(state, device=device)
            )
        mask = torch.as_tensor(start.reshape(n, 1), device=device)
        prev = None
        if prev_action is not None:
            prev = torch.as_tensor(np.asarray(prev_action, np.int64).reshape(n, 1), device=device)
        logits, hx = self(obs.to(device)[:, None], hx, mask, prev)
        logits = logits[:, 0].float()
        if deterministic:
            actions = logits.argmax(-1)
        else:
            actions = torch.multinomial(torch.softmax(logits, -1), 1)[:, 0]
        state = tuple(h.cpu().numpy() for h in hx) if isinstance(hx, tuple) else hx.cpu().numpy()
        actions = actions.cpu().numpy().astype(np.int64)
        return (actions[0] if single else actions), state

    def initial_state(self, batch_size: int, device=None):
        """Zero state for `batch_size` sequences: a tensor, or a pair with mixed_memory."""
        h = torch.zeros(batch_size, self.rnn.state_size, device=device)
        return (h, torch.zeros_like(h)) if self.config.mixed_memory else h
