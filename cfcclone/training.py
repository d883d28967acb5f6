"""`cfcclone train`: BPTT over windows of expert steps, scored by closed-loop return.

Each epoch draws `batches_per_epoch` batches of windows (B, T) from the train split, trains
with cross-entropy on the expert's actions (optionally class-weighted), Adam (with an optional
warmup and cosine schedule) and gradient clipping, then records val loss and accuracy and the
greedy closed-loop return over N episodes in the vector env. The `horizon` decides how a
window's state begins: zero (random windows, as the tutorial), burn-in (the first steps only
warm the state) or stored (EpisodeStreams: each row's state is carried to its next window,
truncated BPTT). `init` starts from a checkpoint's weights. `RUN/last.safetensors` is
written every epoch and `RUN/best.safetensors` whenever the return improves;
`RUN/train_state.safetensors` (optimizer, epoch, RNG states) lets `resume` continue exactly
where the last finished epoch left off. Metrics go to `RUN/metrics.jsonl`.

Where the device has fast bf16 (CUDA, or a CPU with AVX512-BF16/AMX) the encoder runs under
bf16 autocast with channels_last convs, about 2x faster on this project's 2-core CPUs; the CfC
stays fp32. On CUDA, batches are pinned and moved with non_blocking copies, and uint8 frames
travel (the model scales them). Batches are gathered by a background thread.

DDP: `Trainer(config, rank, world_size)` draws its batches from an RNG seeded by (seed, rank),
and only rank 0 evaluates and writes. To go multi-GPU, wrap `trainer.model` in
DistributedDataParallel after construction and divide the batch by world_size; nothing else
changes.
"""

from __future__ import annotations

import json
import math
import queue
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from cfcclone.agent import check_policy_matches_env
from cfcclone.checkpoint import load_policy, load_train_state, save_policy, save_train_state
from cfcclone.data import SequenceDataset
from cfcclone.evaluation import evaluate_policy
from cfcclone.models import ConvCfC, PolicyConfig
from cfcclone.models.policy import bf16_supported

CLASS_WEIGHTS = ("none", "balanced", "sqrt")
HORIZONS = ("zero", "burn-in", "stored")
SCHEDULES = ("constant", "cosine")


@dataclass
class TrainConfig:
    data: str
    """Dataset directory (cfcclone collect or import-ncps)."""
    out: str
    """Run directory: checkpoints, metrics.jsonl, train_state."""
    encoder: str = "nature"
    units: int = 64
    """CfC units."""
    seq_len: int = 32
    batch: int = 32
    lr: float = 1e-4
    warmup: int = 0
    """Steps over which the learning rate rises linearly to `lr` (0: none). Without it, lr
    1e-3 blew the nature features up in the first 50 steps of one seed in three, and that
    ConvCfC never left the majority action."""
    schedule: str = "constant"
    """After the warmup: "constant", or "cosine" decay to 0 at the end of the last epoch."""
    epochs: int = 10
    batches_per_epoch: int = 0
    """0: train steps // (batch * seq_len), one pass over the data in expectation."""
    device: str = "auto"
    eval_episodes: int = 10
    eval_envs: int = 8
    class_weights: str = "none"
    """none, balanced (inverse frequency) or sqrt (its square root)."""
    amp: str = "auto"
    """bf16 autocast of the encoder: auto (where the device has fast bf16), bf16, or off."""
    grad_clip: float = 1.0
    horizon: str = "zero"
    """How a window's state begins: "zero" (zero state, as the tutorial), "burn-in" (the first
    `burn_in` steps only warm the state, as in R2D2) or "stored" (truncated BPTT: each row
    plays whole episodes, its state carried from one window to the next)."""
    burn_in: int = 8
    """Steps that only warm the state, with horizon "burn-in"."""
    init: str | None = None
    """A checkpoint to start from (its weights and PolicyConfig), instead of a fresh policy."""
    val_fraction: float = 0.1
    seed: int = 0
    progress: bool = True


class TrainingError(RuntimeError):
    """Training cannot go on (a non-finite loss); the message says what was kept."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but torch sees no CUDA device")
    return torch.device(name)


def _use_bf16(amp: str, device: torch.device) -> bool:
    if amp not in ("auto", "bf16", "off"):
        raise ValueError(f"unknown amp {amp!r}; expected auto, bf16 or off")
    return amp == "bf16" or (amp == "auto" and bf16_supported(device))


def class_weights(counts: np.ndarray, mode: str) -> torch.Tensor | None:
    """Loss weights per action from the train split's action counts."""
    if mode not in CLASS_WEIGHTS:
        raise ValueError(f"unknown class weighting {mode!r}; expected one of {CLASS_WEIGHTS}")
    if mode == "none":
        return None
    w = counts.sum() / (len(counts) * np.maximum(counts, 1))
    w = np.sqrt(w) if mode == "sqrt" else w
    return torch.tensor(w / w[counts > 0].mean(), dtype=torch.float32)


def window_loss(model, batch, weights=None, hx=None, burn_in: int = 0):
    """Cross-entropy of a Batch (on the model's device) from initial state `hx`, zeroed where
    the batch marks an episode start. The first `burn_in` steps run without gradients and
    only warm the state. Returns (loss, logits (N, A), labels (N,), final hx)."""
    obs, starts, actions = batch.obs, batch.episode_start, batch.actions
    if burn_in:
        with torch.no_grad():
            _, hx = model(obs[:, :burn_in], hx, starts[:, :burn_in])
        obs, starts, actions = obs[:, burn_in:], starts[:, burn_in:], actions[:, burn_in:]
    logits, hx = model(obs, hx, starts)
    logits = logits.reshape(-1, logits.shape[-1])
    labels = actions.reshape(-1)
    return F.cross_entropy(logits, labels, weight=weights), logits, labels, hx


def _detach(hx):
    return tuple(h.detach() for h in hx) if isinstance(hx, tuple) else hx.detach()


def _prefetch(draw, n: int, pin: bool):
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


class Trainer:
    def __init__(
        self, config: TrainConfig, resume: bool = False, rank: int = 0, world_size: int = 1
    ):
        self.config, self.rank = config, rank
        self.device = resolve_device(config.device)
        self.out = Path(config.out)
        c = config
        self.train_set = SequenceDataset(c.data, c.seq_len, "train", c.val_fraction, c.seed)
        self.val_set = SequenceDataset(c.data, c.seq_len, "val", c.val_fraction, c.seed)
        self.env_config = self.train_set.env_config
        if c.horizon not in HORIZONS:
            raise ValueError(f"unknown horizon {c.horizon!r}; expected one of {HORIZONS}")
        if c.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {c.schedule!r}; expected one of {SCHEDULES}")
        if c.warmup < 0:
            raise ValueError(f"expected warmup >= 0 steps, got {c.warmup}")
        if c.horizon == "burn-in" and not 0 < c.burn_in < c.seq_len:
            raise ValueError(f"expected 0 < burn_in < seq_len ({c.seq_len}), got {c.burn_in}")
        torch.manual_seed(c.seed)  # before the model, so that its initial weights follow the seed
        self.policy = self._initial_policy().to(self.device)
        self.policy.use_bf16(_use_bf16(c.amp, self.device))
        self.model = self.policy  # DDP wraps this one
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=c.lr)
        weights = class_weights(self.train_set.action_counts(), c.class_weights)
        self.weights = None if weights is None else weights.to(self.device)
        self.rng = np.random.default_rng([c.seed, rank])
        self.batches_per_epoch = c.batches_per_epoch or max(
            1, self.train_set.steps // (c.batch * c.seq_len)
        )
        self.epoch, self.best = 0, -math.inf
        if resume:
            self._resume()
        elif (self.out / "last.safetensors").exists():
            raise FileExistsError(f"{self.out} already holds a run; pass --resume or another --out")

    def _initial_policy(self) -> ConvCfC:
        """A fresh policy from the config, or the `init` checkpoint's (for this dataset's game)."""
        c, meanings = self.config, self.train_set.action_meanings
        if c.init is None:
            return ConvCfC(
                PolicyConfig(
                    n_actions=len(meanings),
                    encoder=c.encoder,
                    units=c.units,
                    action_meanings=meanings,
                )
            )
        policy = load_policy(c.init)
        check_policy_matches_env(policy, meanings)
        if policy.env_config != self.env_config:
            raise ValueError(
                f"{c.init} was trained on {policy.env_config}, the data is {self.env_config}"
            )
        return policy.train()

    def train_step(self, batch, hx=None) -> tuple[float, float]:
        """One optimizer step on a Batch from state `hx` (None: zeros); returns (loss,
        accuracy). The final state, detached, is kept in `self.hx` for stored-state training."""
        batch = batch.to(self.device, non_blocking=True)
        burn_in = self.config.burn_in if self.config.horizon == "burn-in" else 0
        loss, logits, labels, hx = window_loss(self.model, batch, self.weights, hx, burn_in)
        self.hx = _detach(hx)
        if not torch.isfinite(loss):
            kept = (
                f"the last good checkpoint, {self.out / 'last.safetensors'}, is from epoch "
                f"{self.epoch}"
                if self.epoch
                else "no checkpoint was written yet"
            )
            raise TrainingError(
                f"loss became {loss.item()} in epoch {self.epoch + 1}; training stopped and "
                f"{kept}. Try a lower --lr or --grad-clip"
            )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.policy.parameters(), self.config.grad_clip)
        self.optimizer.step()
        return loss.item(), (logits.argmax(-1) == labels).float().mean().item()

    def train_epoch(self) -> dict:
        self.model.train()
        losses, accs, t0 = [], [], time.perf_counter()
        pin, c = self.device.type == "cuda", self.config
        stored = c.horizon == "stored"
        if stored:  # new streams each epoch, from episode starts: resume stays exact
            streams = self.train_set.streams(c.batch, self.rng)
            draw = streams.next
        else:
            draw = lambda: self.train_set.sample(c.batch, self.rng)  # noqa: E731
        batches = _prefetch(draw, self.batches_per_epoch, pin)
        self.hx = None
        bar = tqdm(
            batches,
            total=self.batches_per_epoch,
            desc=f"epoch {self.epoch + 1}",
            leave=False,
            disable=not self.config.progress,
        )
        for i, batch in enumerate(bar):
            self._set_lr(self.epoch * self.batches_per_epoch + i)
            loss, acc = self.train_step(batch, self.hx if stored else None)
            losses.append(loss)
            accs.append(acc)
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}", acc=f"{np.mean(accs[-20:]):.2f}")
        seconds = time.perf_counter() - t0
        frames = self.batches_per_epoch * self.config.batch * self.config.seq_len
        return {
            "train_loss": float(np.mean(losses)),
            "train_acc": float(np.mean(accs)),
            "train_frames_per_s": frames / seconds,
        }

    def learning_rate(self, step: int) -> float:
        """The learning rate of global step `step` (0-based): warmup, then the schedule."""
        c = self.config
        if step < c.warmup:
            return c.lr * (step + 1) / c.warmup
        if c.schedule == "constant":
            return c.lr
        total = max(1, c.epochs * self.batches_per_epoch - c.warmup)
        return c.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, (step - c.warmup) / total)))

    def _set_lr(self, step: int) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate(step)

    @torch.no_grad()
    def validate(self) -> dict:
        if not len(self.val_set):
            return {"val_loss": None, "val_acc": None}
        self.model.eval()
        loss_sum, correct, count = 0.0, 0, 0
        for batch in self.val_set.batches(self.config.batch):
            batch = batch.to(self.device, non_blocking=True)
            loss, logits, labels, _ = window_loss(self.model, batch)
            loss_sum += loss.item() * labels.numel()
            correct += (logits.argmax(-1) == labels).sum().item()
            count += labels.numel()
        return {"val_loss": loss_sum / count, "val_acc": correct / count}

    def closed_loop(self) -> dict:
        if self.config.eval_episodes < 1:
            return {"return_mean": None}
        result = evaluate_policy(
            self.policy,
            self.env_config,
            self.config.eval_episodes,
            self.config.eval_envs,
            seed=10_000 + self.epoch,
            device=self.device,
        )
        return {
            "return_mean": result.mean,
            "return_std": result.std,
            "returns": result.returns,
            "eval_steps_per_s": result.steps / result.seconds,
        }

    def fit(self, on_epoch=None) -> list[dict]:
        """Train until `epochs`; returns this call's metric rows. `on_epoch(row)` is called
        after each epoch, else the epoch's line is printed."""
        self.out.mkdir(parents=True, exist_ok=True)
        rows = []
        epochs = range(self.epoch, self.config.epochs)
        for _ in tqdm(epochs, desc="train", unit="epoch", disable=not self.config.progress):
            row = {"epoch": self.epoch + 1, **self.train_epoch(), **self.validate()}
            self.epoch += 1
            row.update(self.closed_loop())
            if self.rank == 0:
                self._save(row)
            rows.append(row)
            if on_epoch is not None:
                on_epoch(row)
            elif self.config.progress:
                tqdm.write(_epoch_line(row))
        return rows

    def _save(self, row: dict) -> None:
        ret = row["return_mean"] if row["return_mean"] is not None else -(row["val_loss"] or 0)
        improved = ret > self.best
        self.best = max(self.best, ret)
        meta = {"metrics": {k: v for k, v in row.items() if k != "returns"}}
        if improved:
            save_policy(
                self.out / "best.safetensors", self.policy, self.env_config, self.epoch, meta
            )
        save_policy(self.out / "last.safetensors", self.policy, self.env_config, self.epoch, meta)
        state = {
            "epoch": self.epoch,
            "best": self.best,
            "config": asdict(self.config),
            "numpy_rng": self.rng.bit_generator.state,
            "torch_rng": torch.get_rng_state().tolist(),
        }
        save_train_state(self.out / "train_state.safetensors", self.policy, self.optimizer, state)
        with open(self.out / "metrics.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")

    def _resume(self) -> None:
        path = self.out / "train_state.safetensors"
        if not path.exists():
            raise FileNotFoundError(f"nothing to resume: {path} does not exist")
        state = load_train_state(path, self.policy, self.optimizer)
        self.epoch, self.best = state["epoch"], state["best"]
        self.rng.bit_generator.state = state["numpy_rng"]
        torch.set_rng_state(torch.tensor(state["torch_rng"], dtype=torch.uint8))
        _truncate_metrics(self.out / "metrics.jsonl", self.epoch)


def _truncate_metrics(path: Path, epoch: int) -> None:
    """Drop metric rows of epochs after the resumed one (a crash between the two writes)."""
    if path.exists():
        rows = [r for r in path.read_text().splitlines() if json.loads(r)["epoch"] <= epoch]
        path.write_text("".join(r + "\n" for r in rows))


def _fmt(x, spec: str) -> str:
    return "n/a" if x is None else format(x, spec)


def _epoch_line(row: dict) -> str:
    """The tutorial's per-epoch line."""
    acc = None if row["val_acc"] is None else 100 * row["val_acc"]
    return (
        f"Epoch {row['epoch']}, train_loss={row['train_loss']:.4g}, "
        f"val_loss={_fmt(row['val_loss'], '.4g')}, val_acc={_fmt(acc, '.2f')}%, "
        f"mean return {_fmt(row['return_mean'], '.1f')}"
    )
