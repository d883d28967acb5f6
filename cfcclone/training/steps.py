"""The pieces of a training step: the window loss, class weights, the lr schedule, prefetching,
and the recalibration of BatchNorm's running statistics.

`window_loss` is the one place where a Batch meets the model: cross-entropy from an initial
state, zeroed where the batch marks an episode start, after an optional burn-in without
gradients. The Trainer, the benchmark and the tests all step through it.
"""

from __future__ import annotations

import math
import queue
import threading
from typing import get_args

import numpy as np
import torch
import torch.nn.functional as F

from cfcclone.training.config import ClassWeights, OptimConfig

RARE = 0.001
"""The smallest share of the steps that class weights take a class to have."""


def class_weights(counts: np.ndarray, mode: str) -> torch.Tensor | None:
    """Loss weights per action from the train split's action counts (None for "none"): inverse
    frequency, or its square root, with each count floored at RARE of the steps; mean 1 over
    the actions seen."""
    if mode not in get_args(ClassWeights):
        raise ValueError(
            f"unknown class weighting {mode!r}; expected one of {list(get_args(ClassWeights))}"
        )
    if mode == "none":
        return None
    # a class under RARE of the steps weighs as if it had RARE: under `balanced` the 22 FIRE
    # steps (the env's serves) of 200,000 Pong frames carried as much loss as 9,167 RIGHTs
    floor = max(1.0, RARE * counts.sum())
    w = counts.sum() / (len(counts) * np.maximum(counts, floor))
    w = np.sqrt(w) if mode == "sqrt" else w
    return torch.tensor(w / w[counts > 0].mean(), dtype=torch.float32)


def window_loss(model, batch, weights=None, hx=None, burn_in: int = 0, reduction="mean"):
    """The loss of a Batch (on the model's device) from initial state `hx`, zeroed where the
    batch marks an episode start: cross-entropy for discrete actions, the squared error of
    the action scaled to [-1, 1] (summed over its dimensions) for a Box. The first `burn_in`
    steps run without gradients and only warm the state. Returns (loss, out (N, A), labels
    (N,) or targets (N, A), final hx); the loss is the (weighted) mean over the steps, or
    with reduction="sum" their (weighted) sum."""
    obs, starts, actions, prev = batch.obs, batch.episode_start, batch.actions, batch.prev_actions
    times = batch.elapsed
    if burn_in:
        warm = None if times is None else times[:, :burn_in]
        with torch.no_grad():
            _, hx = model(obs[:, :burn_in], hx, starts[:, :burn_in], prev[:, :burn_in], warm)
        obs, starts, actions = obs[:, burn_in:], starts[:, burn_in:], actions[:, burn_in:]
        prev = prev[:, burn_in:]
        times = None if times is None else times[:, burn_in:]
    logits, hx = model(obs, hx, starts, prev, times)
    logits = logits.reshape(-1, logits.shape[-1])
    policy = getattr(model, "module", model)  # under DDP, the policy it wraps
    if policy.config.action.is_box:
        target = policy.target(actions).reshape(logits.shape)
        loss = F.mse_loss(logits.float(), target, reduction="none").sum(-1)
        return (loss.sum() if reduction == "sum" else loss.mean()), logits, target, hx
    labels = actions.reshape(-1)
    loss = F.cross_entropy(logits, labels, weight=weights, reduction=reduction)
    return loss, logits, labels, hx


def agreement(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per step: 1.0 where the argmax is the label; for Box targets (N, A), the mean absolute
    error of the scaled action (a distance, not a share: lower is better)."""
    if labels.dim() == 2:
        return (logits.float() - labels).abs().mean(-1)
    return (logits.argmax(-1) == labels).float()


def detach(hx):
    """The state without its graph (a tensor or a pair)."""
    return tuple(h.detach() for h in hx) if isinstance(hx, tuple) else hx.detach()


def learning_rate(optim: OptimConfig, step: int, total_steps: int) -> float:
    """The learning rate of global step `step` (0-based) of `total_steps`: warmup, then the
    schedule (cosine reaches 0 at the last step)."""
    if step < optim.warmup:
        return optim.lr * (step + 1) / optim.warmup
    if optim.schedule == "constant":
        return optim.lr
    total = max(1, total_steps - optim.warmup)
    return optim.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, (step - optim.warmup) / total)))


def prefetch(draw, n: int, pin: bool):
    """Yield n batches from `draw()`, gathered one or two ahead by a background thread."""
    q: queue.Queue = queue.Queue(maxsize=3)

    def work():
        try:
            for _ in range(n):
                b = draw()
                q.put(b.pin_memory() if pin else b)
        except BaseException as e:  # surfaced in the consumer
            q.put(e)

    threading.Thread(target=work, daemon=True).start()
    for _ in range(n):
        item = q.get()
        if isinstance(item, BaseException):
            raise item
        yield item


@torch.no_grad()
def recalibrate_batchnorm(model: torch.nn.Module, batches) -> bool:
    """Set every BatchNorm's running statistics of `model` to the exact average over
    `batches` (an iterable of Batches on the model's device), in train mode, no gradients
    (PreciseBN, Wu & Johnson 2021); the momenta are restored. Returns whether the model has
    any BatchNorm (without one, nothing is drawn from `batches`)."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    if not norms:
        return False
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average
    model.train()
    for batch in batches:
        window_loss(model, batch)
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    return True
