"""ConvCfC: an encoder per observation stack feeding an ncps cell, forward over (B, T).

The spaces decide the network (`PolicyConfig.obs`, `.action`): a conv encoder for stacked
uint8 frames or an MLP encoder for float state vectors (masked by `obs_mask`, normalised by
statistics of the training data kept as buffers in the checkpoint); logits for discrete
actions, or the action scaled to [-1, 1] for a Box (`actions` maps it into the bounds). The
core is ncps's CfC or LTC, dense or wired as an NCP (`cfcclone.models.cores`), or none
(`core="none"`: a feedforward baseline trained, evaluated and exported by the same
commands). The module does no I/O and keeps no state: the recurrent state goes in and out as
`hx`, and `cfcclone.agent.StatefulAgent` carries it across steps.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from cfcclone.models.config import PolicyConfig
from cfcclone.models.cores import make_core, run_timed
from cfcclone.models.encoders import VectorEncoder, make_encoder


def bf16_supported(device: str | torch.device) -> bool:
    """Whether bf16 autocast is fast on `device`: a CUDA GPU with bf16, or a CPU with
    AVX512-BF16 or AMX."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(cpu, name, lambda: False)() for name in checks)


def _zero_where(hx, mask: torch.Tensor):
    """hx (B, H) or a pair of them, with the rows of mask (B,) bool set to zero."""
    if isinstance(hx, tuple):
        return tuple(_zero_where(h, mask) for h in hx)
    return torch.where(mask[:, None], torch.zeros_like(hx), hx)


class ConvCfC(nn.Module):
    """obs (B, T, stack, 84, 84) uint8 or (B, T, stack, d) float32, hx -> out (B, T, n), hx.

    out is logits for discrete actions, and for a Box the action scaled to [-1, 1] (`actions`
    maps either to what the env takes). hx is (B, units) float, or a pair of them with
    mixed_memory, or (B, 1) zeros that pass through with core none; None means zeros. The
    model scales uint8 to [0, 1] itself, so uint8 is what travels to the device. Parameter
    names (`conv_block.*`, `rnn.*`) are the NCP tutorial's.
    """

    def __init__(self, config: PolicyConfig):
        super().__init__()
        if config.n_actions < 1:
            raise ValueError(f"expected n_actions >= 1, got {config.n_actions}")
        self.config = config
        self.bf16 = False
        """Whether the encoder runs under bf16 autocast (`use_bf16`)."""
        if config.obs.kind == "image":
            self.conv_block = make_encoder(
                config.encoder, config.stack, config.screen_size, config.features
            )
        else:
            seen = config.obs.dim if config.obs_mask is None else len(config.obs_mask)
            self.conv_block = VectorEncoder(config.stack, seen, config.hidden, config.obs_mask)
        inputs = self.conv_block.features + config.n_actions * config.prev_action
        self.readout = None  # the LTC's linear readout of its motor neurons (cores' doc)
        if config.core != "none":
            self.rnn = make_core(config, inputs)
            if config.core == "ltc":
                self.readout = nn.Linear(config.n_actions, config.n_actions)
        else:
            self.rnn = None
            self.head = nn.Linear(inputs, config.n_actions)
        self.skip = nn.Linear(inputs, config.n_actions) if config.skip_head else None
        if config.action.is_box:  # the head predicts (action - center) / scale
            center, scale = config.action.center_scale()
            self.register_buffer("action_center", torch.tensor(center, dtype=torch.float32))
            self.register_buffer("action_scale", torch.tensor(scale, dtype=torch.float32))
            for name in ("low", "high"):
                bound = torch.tensor(getattr(config.action, name), dtype=torch.float32)
                self.register_buffer(f"action_{name}", bound, persistent=False)

    def check_obs(self, obs: torch.Tensor, ndim: int) -> None:
        """Raise a ValueError unless obs has this model's observation shape and dtype and
        `ndim` dims in all: (B, T, *obs_shape) or (N, *obs_shape)."""
        c = self.config
        shape, dtype = c.obs_shape, c.obs_dtype
        lead = "(B, T, " if ndim == len(shape) + 2 else "(N, "
        if obs.dtype != dtype or obs.dim() != ndim or tuple(obs.shape[-len(shape) :]) != shape:
            name = str(dtype).replace("torch.", "")
            raise ValueError(
                f"expected obs {lead}{', '.join(map(str, shape))}) {name}, got "
                f"{tuple(obs.shape)} {str(obs.dtype).replace('torch.', '')}"
                + (
                    "; pass raw uint8 frames, the model scales them"
                    if obs.is_floating_point() and dtype == torch.uint8
                    else ""
                )
            )

    def actions(self, out: torch.Tensor, temperature: float = 0.0, generator=None):
        """What the env takes from `out` (..., n): the argmax (or a softmax sample at
        `temperature` > 0) as int64, or for a Box the mean in the action's units, clipped to
        its bounds, as float32."""
        if self.config.action.is_box:
            a = self.action_center + self.action_scale * out.float()
            return torch.maximum(torch.minimum(a, self.action_high), self.action_low)
        if temperature == 0:
            return out.argmax(-1)
        probs = torch.softmax(out.float().reshape(-1, out.shape[-1]) / temperature, -1)
        return torch.multinomial(probs, 1, generator=generator).reshape(out.shape[:-1])

    def target(self, actions: torch.Tensor) -> torch.Tensor:
        """A Box action in its units -> what `out` is trained towards, (action - center) /
        scale; discrete labels unchanged."""
        if not self.config.action.is_box:
            return actions
        return (actions.float() - self.action_center) / self.action_scale

    def use_bf16(self, enabled: bool = True) -> ConvCfC:
        """Run the encoder under bf16 autocast with channels_last convs (about 2x on CPUs with
        AVX512-BF16 and on GPUs); the CfC and its state stay fp32. Not saved in checkpoints.
        A state-vector MLP stays fp32 (it is small, and bf16 would round the states)."""
        self.bf16 = enabled and self.config.obs.kind == "image"
        enabled = self.bf16
        if enabled:
            self.conv_block.to(memory_format=torch.channels_last)
        return self

    def encode(self, obs: torch.Tensor) -> torch.Tensor:
        """obs (B, T, *obs_shape) -> features (B, T, F) float32."""
        self.check_obs(obs, 2 + len(self.config.obs_shape))
        b, t = obs.shape[:2]
        if self.config.obs.kind == "vector":
            return self.conv_block(obs.reshape(b * t, *obs.shape[2:])).reshape(b, t, -1)
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
        timespans: torch.Tensor | None = None,
    ):
        """obs (B, T, stack, H, W) uint8 -> logits (B, T, n_actions), hx.

        episode_start (B, T) bool, optional: the state is zeroed before each step where it is
        True, so a sequence may run across episode boundaries (as the agent's state does).
        prev_action (B, T) int64, for a policy with `prev_action` (ignored by others): the
        action executed at the step before each, -1 where none; it is read as none where
        episode_start is True. timespans (B, T) float, for a policy with `timespans` (ignored
        by others): the time elapsed before each step's observation, in nominal steps (None:
        1 each).
        """
        return self.decide(self.encode(obs), hx, episode_start, prev_action, timespans)

    def decide(self, features, hx=None, episode_start=None, prev_action=None, timespans=None):
        """`forward` after the encoder: features (B, T, F) -> out (B, T, n_actions), hx (the
        rest as in `forward`). Saliency calls it on features it can differentiate."""
        if self.config.prev_action:
            hot = self._one_hot(prev_action, episode_start, features)
            features = torch.cat([features, hot], -1)
        if self.rnn is None:  # feedforward: the (zero) state passes through, reset as a CfC's
            hx = self.initial_state(features.shape[0], features.device) if hx is None else hx
            if episode_start is not None:  # (and an ONNX graph keeps its episode_start input)
                hx = _zero_where(hx, episode_start[:, 0])
            logits = self.head(features)
        else:
            timed = None
            if self.config.timespans:
                timed = torch.ones(features.shape[:2], device=features.device)
                timed = timed if timespans is None else timed * timespans.to(features.device)
            logits, hx = self._core(features, hx, episode_start, timed)
            if self.readout is not None:
                logits = self.readout(logits)
        return (logits if self.skip is None else logits + self.skip(features)), hx

    def _one_hot(self, prev_action, episode_start, like) -> torch.Tensor:
        """(B, T, n_actions) float: prev_action one-hot, zeros where -1 or an episode starts
        (B and T from `like`, a (B, T, ...) tensor)."""
        b, t, n = *like.shape[:2], self.config.n_actions
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

    def _run(self, features, hx, timespans):
        """ncps's forward, or with timespans the same loop with each row's own times."""
        if timespans is None:
            return self.rnn(features, hx)
        return run_timed(self.rnn, features, hx, timespans)

    def _core(self, features, hx, episode_start, timespans=None):
        """The cell over features (B, T, F): logits (B, T, n_actions), hx."""
        if episode_start is None:
            return self._run(features, hx, timespans)
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
            part = None if timespans is None else timespans[:, lo:hi]
            logits, hx = self._run(features[:, lo:hi], hx, part)
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
        elapsed=None,
    ):
        """SB3-contrib's recurrent `predict`, in numpy: (actions, next state); actions (N,)
        int64, or (N, a) float32 for a Box (the mean, within the bounds).

        observation (N, stack, 84, 84) uint8 or (N, stack, d) float (or one of them); `state`
        as returned by the last call (None: zeros); `episode_start` (N,) bool zeroes those
        envs' state first. `deterministic=False` samples from the softmax (discrete only).
        The state is numpy (a pair of arrays with mixed memory), so it can be kept anywhere
        between calls. `prev_action` (N,) int,
        for a policy with `prev_action`: the action the env executed last step (`info["action"]`
        of cfcclone's envs; -1 where none). `elapsed` (N,) float, for a policy with
        `timespans`: the time each env's last step took (`info["duration"]`; None: 1).

            state, start = None, np.ones(n, bool)
            actions, state = policy.predict(obs, state, start)
        """
        obs = torch.as_tensor(np.asarray(observation))
        if obs.is_floating_point() and self.config.obs_dtype == torch.float32:
            obs = obs.float()  # numpy's float64 states
        single = obs.dim() == len(self.config.obs_shape)
        self.check_obs(obs, obs.dim() if single else len(self.config.obs_shape) + 1)
        obs = obs[None] if single else obs
        n, device = obs.shape[0], next(self.parameters()).device
        start = np.zeros(n, bool) if episode_start is None else np.asarray(episode_start, bool)
        start = start.reshape(1) if single and start.ndim == 0 else start
        if start.shape != (n,):
            raise ValueError(f"expected episode_start ({n},) bool, got shape {start.shape}")
        hx = self.initial_state(n, device) if state is None else self._state_in(state, n, device)
        mask = torch.as_tensor(start.reshape(n, 1), device=device)
        prev = None
        if prev_action is not None:
            prev_action = np.asarray(prev_action)
            prev_action = prev_action.reshape(1) if single else prev_action
            n_actions = self.config.n_actions
            if prev_action.shape not in ((n,), (n, 1)) or prev_action.dtype.kind not in "iu":
                raise ValueError(
                    f"expected prev_action ({n},) int, got {prev_action.shape} {prev_action.dtype}"
                )
            if ((prev_action < -1) | (prev_action >= n_actions)).any():
                raise ValueError(
                    f"expected prev_action in [-1, {n_actions}) (-1: none), got "
                    f"{prev_action.reshape(-1).tolist()}"
                )
            prev = torch.as_tensor(prev_action.astype(np.int64).reshape(n, 1), device=device)
        times = None
        if elapsed is not None:
            elapsed = np.asarray(elapsed, np.float32)
            elapsed = elapsed.reshape(1) if single else elapsed
            if elapsed.shape != (n,):
                raise ValueError(f"expected elapsed ({n},) float, got shape {elapsed.shape}")
            times = torch.as_tensor(elapsed.reshape(n, 1), device=device)
        logits, hx = self(obs.to(device)[:, None], hx, mask, prev, times)
        actions = self.actions(logits[:, 0].float(), 0.0 if deterministic else 1.0)
        state = tuple(h.cpu().numpy() for h in hx) if isinstance(hx, tuple) else hx.cpu().numpy()
        actions = actions.cpu().numpy()
        return (actions[0] if single else actions), state

    def _state_in(self, state, n: int, device):
        """predict's numpy state as tensors; a ValueError naming the expected shape."""
        want = self.initial_state(n, device)
        pair = isinstance(want, tuple)
        parts = state if isinstance(state, tuple) else (state,)
        if len(parts) != (2 if pair else 1):
            raise ValueError(
                f"expected the state {'as a pair of arrays ' if pair else ''}"
                f"({n}, {want[0].shape[1] if pair else want.shape[1]}), as predict returned it"
            )
        out = []
        for part, ref in zip(parts, want if pair else (want,), strict=True):
            array = np.asarray(part)
            if array.shape != tuple(ref.shape):
                raise ValueError(
                    f"expected a state of shape {tuple(ref.shape)} (N envs, the core's width), "
                    f"got {array.shape}"
                )
            out.append(torch.as_tensor(array, dtype=torch.float32, device=device))
        return tuple(out) if pair else out[0]

    def initial_state(self, batch_size: int, device=None):
        """Zero state for `batch_size` sequences: a tensor, or a pair with mixed_memory; one
        column that passes through with core none."""
        width = 1 if self.rnn is None else self.rnn.state_size
        h = torch.zeros(batch_size, width, device=device)
        return (h, torch.zeros_like(h)) if self.config.mixed_memory else h
