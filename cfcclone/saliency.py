"""Where a policy looks: VisualBackProp and gradient saliency of its conv encoder, per step.

- `visual_backprop` (Bojarski et al. 2016, the NCP paper's saliency): each conv stage's
  feature maps averaged over channels; from the deepest, each average is scaled up to the
  stage before by a transposed convolution of ones with that stage's kernel and stride, and
  multiplied into it, down to the input frame. It needs no gradient and no label.
- `gradient_saliency`: |d out / d frame| of the action played (the logit of the argmax, or a
  Box action's norm), summed over the stack, from the recurrent state the step started from.

`rollout_saliency` plays a policy on one env and returns each step's newest frame, both maps'
choice and the RAM; `play --saliency` overlays the maps on a recording (`overlay`).
`object_mass` is the check that the maps mean something on Breakout: the share of saliency
mass in boxes around the ball and the paddle (from `cfcclone.experts.ram`), over those boxes'
share of the frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from cfcclone.agent import StatefulAgent, step_inputs
from cfcclone.models import ConvCfC
from cfcclone.models.encoders import ImpalaCNN, NatureCNN, TutorialConvBlock
from cfcclone.rollout import rollout

Method = Literal["vbp", "gradient"]


def encoder_stages(encoder: nn.Module) -> list[tuple[nn.Module, int, int, int]]:
    """(module, kernel, stride, padding) of each conv stage of a frame encoder, shallow to
    deep: the module's output (through a ReLU) is the stage's feature maps."""
    if isinstance(encoder, NatureCNN):
        convs = [m for m in encoder.cnn if isinstance(m, nn.Conv2d)]
        relus = [m for m in encoder.cnn if isinstance(m, nn.ReLU)]
        return [
            (r, c.kernel_size[0], c.stride[0], c.padding[0])
            for c, r in zip(convs, relus, strict=True)
        ]
    if isinstance(encoder, TutorialConvBlock):
        e = encoder
        return [(m, 5, 2, 2) for m in (e.conv1, e.bn2, e.conv3, e.bn4)]
    if isinstance(encoder, ImpalaCNN):  # a conv, a 3x3 max-pool of stride 2, residual blocks
        return [(s, 3, 2, 1) for s in list(encoder.stacks)[:3]]
    raise ValueError(f"saliency needs a conv encoder of frames, not {type(encoder).__name__}")


def visual_backprop(maps: list[torch.Tensor], stages, size: int) -> torch.Tensor:
    """VisualBackProp of the stages' feature maps (B, C, h, w), shallow to deep: (B, size,
    size) in [0, 1] per frame."""
    means = [F.relu(m.float()).mean(1, keepdim=True) for m in maps]
    mask = means[-1]
    for k in range(len(means) - 1, 0, -1):
        _, kernel, stride, padding = stages[k]
        mask = _up(mask, kernel, stride, padding, means[k - 1].shape[-2:]) * means[k - 1]
    _, kernel, stride, padding = stages[0]
    mask = _up(mask, kernel, stride, padding, (size, size))[:, 0]
    return _normalise(mask)


def _up(x: torch.Tensor, kernel: int, stride: int, padding: int, shape) -> torch.Tensor:
    """A transposed convolution of ones (what VisualBackProp scales up with), cut or padded to
    `shape` where the stage's arithmetic rounded."""
    ones = torch.ones(1, 1, kernel, kernel, device=x.device)
    y = F.conv_transpose2d(x, ones, stride=stride, padding=padding)
    h, w = shape
    y = y[..., :h, :w]
    return F.pad(y, (0, w - y.shape[-1], 0, h - y.shape[-2]))


def _normalise(mask: torch.Tensor) -> torch.Tensor:
    flat = mask.reshape(len(mask), -1)
    low, high = flat.min(1).values, flat.max(1).values
    return (mask - low[:, None, None]) / (high - low).clamp_min(1e-12)[:, None, None]


def gradient_saliency(policy: ConvCfC, obs, hx=None, **inputs) -> torch.Tensor:
    """|d out / d frame| of the action played, summed over the stack: (B, H, W) in [0, 1].
    obs (B, stack, H, W) uint8; hx the state the step starts from (None: zeros); `inputs`
    the step's prev_action and elapsed, as `cfcclone.agent.step_inputs` gives them."""
    device = next(policy.parameters()).device
    x = torch.as_tensor(np.asarray(obs), device=device).float().div(255).requires_grad_(True)
    b = len(x)
    with torch.enable_grad():
        features = policy.conv_block(x).reshape(b, 1, -1)
        extra = {
            k: torch.as_tensor(np.asarray(v)).reshape(b, 1).to(device) for k, v in inputs.items()
        }
        times = extra.get("elapsed")
        out, _ = policy.decide(features, hx, None, extra.get("prev_action"),
                               None if times is None else times.float())  # fmt: skip
        out = out[:, 0]
        if policy.config.action.is_box:
            score = out.norm(dim=-1)
        else:
            score = out.gather(1, out.argmax(-1, keepdim=True))[:, 0]
        (grad,) = torch.autograd.grad(score.sum(), x)
    return _normalise(grad.abs().sum(1))


class SaliencyActor:
    """An Actor that plays `policy` as the `StatefulAgent` does and keeps, for each step, the
    saliency map of the observation it acted on (`method`), in `maps` (numpy (B, H, W))."""

    def __init__(self, policy: ConvCfC, num_envs: int, method: Method = "vbp", device="cpu"):
        if policy.config.obs.kind != "image":
            raise ValueError("saliency maps are of frames; this policy reads state vectors")
        self.agent = StatefulAgent(policy, num_envs, device)
        self.policy, self.method = policy, method
        self.stages = encoder_stages(policy.conv_block)
        self.maps: np.ndarray | None = None
        self._seen: list[torch.Tensor] | None = None  # a list only while `act` runs
        self._hooks = [m.register_forward_hook(self._keep) for m, *_ in self.stages]

    def _keep(self, module, inputs, out) -> None:
        if self._seen is not None:
            self._seen.append(out.detach())

    def close(self) -> None:
        """Take the actor's hooks off the policy's encoder."""
        for hook in self._hooks:
            hook.remove()
        self._hooks = []

    @property
    def config(self):
        return self.policy.config

    def act(self, obs, episode_start, info=None) -> np.ndarray:
        info = info or {}
        start = np.asarray(episode_start, bool)
        before = self.agent.hx
        before = tuple(h.clone() for h in before) if isinstance(before, tuple) else before.clone()
        self._seen = []
        try:
            actions = self.agent.act(obs, episode_start, info)
            seen = self._seen
        finally:
            self._seen = None
        if self.method == "vbp":
            maps = visual_backprop(seen, self.stages, obs.shape[-1])
        else:
            hx = _zero_rows(before, torch.as_tensor(start, device=self.agent.device))
            maps = gradient_saliency(self.policy, obs, hx, **step_inputs(self.config, info, start))
        self.maps = maps.cpu().numpy()
        return actions


def _zero_rows(hx, rows: torch.Tensor):
    if isinstance(hx, tuple):
        return tuple(_zero_rows(h, rows) for h in hx)
    return torch.where(rows[:, None], torch.zeros_like(hx), hx)


@dataclass
class SaliencyRollout:
    """One env's steps: the newest frame each step acted on (T, H, W) uint8, its saliency map
    (T, H, W) float32 in [0, 1], the RAM that came with it (T, 128) uint8 and the action."""

    frames: np.ndarray
    maps: np.ndarray
    ram: np.ndarray
    actions: np.ndarray


def rollout_saliency(
    policy: ConvCfC, env_config, steps: int, method: Method = "vbp", seed: int = 0
) -> SaliencyRollout:
    """Play `policy` for `steps` steps of one env (episodes reset as they end, from `seed`)
    and return each step's frame, saliency map, RAM and action."""
    from cfcclone.vector_env import make_vector_env

    env = make_vector_env(num_envs=1, config=env_config, ram=True)
    actor = SaliencyActor(policy, 1, method)
    frames, maps, ram, actions = [], [], [], []
    try:
        for t in rollout(env, actor, seed):
            frames.append(t.obs[0, -1])
            maps.append(actor.maps[0])
            ram.append(np.asarray(t.info["ram"])[0])
            actions.append(t.actions[0])
            if len(frames) == steps:
                break
    finally:
        actor.close()
        env.close()
    return SaliencyRollout(*(np.stack(a) for a in (frames, maps, ram, actions)))


def breakout_boxes(ram: np.ndarray, size: int = 84, margin: float = 8.0) -> np.ndarray:
    """(T, size, size) bool: boxes around Breakout's ball and paddle (their screen positions
    from the RAM, `margin` screen pixels around each: the frame max-pools a step's last two
    frames, so a moving paddle shows up to about 7 pixels behind its RAM position) on the
    size x size frame; no ball box where no ball is in play."""
    from cfcclone.experts.ram import Breakout

    s = Breakout.read(ram)
    rows = np.arange(size)[:, None] * 210 / size  # screen row and column of each frame pixel
    cols = np.arange(size)[None, :] * 160 / size
    boxes = []
    for k in range(len(ram)):
        left, right = s.paddle[k] - margin, s.paddle[k] + s.width[k] + margin
        box = (cols >= left) & (cols < right) & (rows >= 189 - margin) & (rows < 193 + margin)
        if s.ball_y[k] > 0:  # the ball: 2 columns from its centre, 4 rows from its top
            top, x = s.ball_y[k] + 9, s.ball_x[k]
            across = (cols >= x - 1 - margin) & (cols < x + 1 + margin)
            box |= across & (rows >= top - margin) & (rows < top + 4 + margin)
        boxes.append(box)
    return np.stack(boxes)


def object_mass(maps: np.ndarray, boxes: np.ndarray) -> dict:
    """The share of saliency mass inside `boxes`, their share of the frame's area (both over
    all steps), and the ratio of the two: 1 is a map that ignores the objects."""
    mass = float((maps * boxes).sum() / max(maps.sum(), 1e-12))
    area = float(boxes.mean())
    return {"mass": mass, "area": area, "ratio": mass / max(area, 1e-12), "steps": len(maps)}


def overlay(frame: np.ndarray, saliency: np.ndarray, scale: int = 3) -> np.ndarray:
    """An RGB frame (H*scale, W*scale, 3) uint8: the grayscale frame with the map in red."""
    gray = cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    heat = cv2.resize(saliency.astype(np.float32), gray.shape[::-1], interpolation=cv2.INTER_LINEAR)
    rgb = np.repeat(gray[..., None], 3, -1).astype(np.float32) * 0.6
    rgb[..., 0] += 255 * 0.8 * heat
    return np.clip(rgb, 0, 255).astype(np.uint8)
