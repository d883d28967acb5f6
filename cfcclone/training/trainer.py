"""`cfcclone train`: BPTT over windows of expert steps, scored by closed-loop return.

Each epoch draws `batches_per_epoch` batches of windows (B, T) from the train split, trains
with cross-entropy on the expert's actions (optionally class-weighted), Adam (with an optional
warmup and cosine schedule) and gradient clipping, sets BatchNorm's running statistics to an
exact average over `bn_recalibration` batches (the tutorial encoder's; PreciseBN), then records
val loss and accuracy and the greedy closed-loop return over N episodes in the vector env. The
window's `horizon` decides how its state begins: zero (random windows, as the tutorial),
burn-in (the first steps only warm the state) or stored (EpisodeStreams: each row's state is
carried to its next window, truncated BPTT). `init` starts from a checkpoint's weights.
`RUN/last.safetensors` is written every epoch and `RUN/best.safetensors` whenever the return
improves, each with the whole TrainConfig; `RUN/train_state.safetensors` (optimizer, epoch, RNG
states, config) lets `resume` continue exactly where the last finished epoch left off. Metrics
go to `RUN/metrics.jsonl`.

Where the device has fast bf16 (CUDA, or a CPU with AVX512-BF16/AMX) the encoder runs under
bf16 autocast with channels_last convs, about 2x faster on this project's 2-core CPUs; the CfC
stays fp32. On CUDA, batches are pinned and moved with non_blocking copies, and uint8 frames
travel (the model scales them). Batches are gathered by a background thread. Under torchrun
(`cfcclone.distributed`) each process draws its share of the global batch and DDP averages
the gradients; rank 0 alone writes, and the run's state holds every rank's RNG.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from tqdm.auto import tqdm

from cfcclone import distributed
from cfcclone.agent import check_policy_matches_env, resolve_device
from cfcclone.atomic import append_line
from cfcclone.checkpoint import (
    load_policy,
    load_train_state,
    read_config,
    save_policy,
    save_train_state,
)
from cfcclone.data import SequenceDataset
from cfcclone.evaluation import evaluate_policy, split_over_ranks
from cfcclone.models import ConvCfC
from cfcclone.models.policy import bf16_supported
from cfcclone.training.config import TrainConfig, view
from cfcclone.training.logs import TensorBoard, epoch_line
from cfcclone.training.resume import (
    DAGGER_STATE,
    STATE,
    check_resume,
    stored_config,
    truncate_metrics,
)
from cfcclone.training.steps import (
    agreement,
    class_weights,
    detach,
    learning_rate,
    prefetch,
    recalibrate_batchnorm,
    window_loss,
)


class TrainingError(RuntimeError):
    """Training cannot go on (a non-finite loss); the message says what was kept."""


def train(config: TrainConfig, resume: bool = False) -> list[dict]:
    """Train a ConvCfC as `config` says; returns the metric rows of this call's epochs.

    from cfcclone import TrainConfig, train
    train(TrainConfig(data="data/breakout", out="runs/bc", epochs=10))
    """
    return Trainer(config, resume=resume).fit()


class Trainer:
    """One training run; `fit()` trains to `config.epochs`, saving after every epoch."""

    def __init__(self, config: TrainConfig, resume: bool = False):
        self.out = Path(config.out)
        if resume:
            check_resume(stored_config(self.out), config)
        elif (self.out / STATE).exists():
            raise FileExistsError(f"{self.out} already holds a run; pass --resume or another --out")
        if (self.out / DAGGER_STATE).exists():
            raise FileExistsError(
                f"{self.out} holds a DAgger run, not a train run; pass another --out"
            )
        c = self.config = config
        self.board = TensorBoard(self.out / "tensorboard") if c.tensorboard else None
        self.device = resolve_device(c.device)
        if c.batch % distributed.world().size:
            raise ValueError(
                f"--batch {c.batch} must be a multiple of the {distributed.world().size} "
                "processes: it is the global batch, and each process takes an equal share"
            )
        self.world = distributed.init(self.device)
        w, f, stack = c.window.seq_len, c.val_fraction, c.view_stack or None
        self.train_set = SequenceDataset(c.data, w, "train", f, c.seed, c.verify, stack)
        self.val_set = SequenceDataset(c.data, w, "val", f, c.seed, stack=stack)
        self.env_config = view(self.train_set.env_config, c.view_stack, c.view_mask)
        torch.manual_seed(c.seed)  # before the model, so that its initial weights follow the seed
        self.policy = self._initial_policy().to(self.device)
        self.model = self.policy  # what the training step calls: DDP's wrapper over processes
        if self.world.size > 1:
            from torch.nn.parallel import DistributedDataParallel

            with distributed.collective("starting DistributedDataParallel"):
                self.model = DistributedDataParallel(self.policy)  # rank 0's weights everywhere
        # the config saved with the run names the policy it trains (an init's, where given)
        self.config = c = dataclasses.replace(c, policy=self.policy.config)
        bf16 = c.amp == "bf16" or (c.amp == "auto" and bf16_supported(self.device))
        self.policy.use_bf16(bf16)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=c.optim.lr)
        counts = self.train_set.action_counts()
        if counts is None and c.optim.class_weights != "none":
            raise ValueError("class weights are for discrete actions; this data has Box actions")
        weights = None if counts is None else class_weights(counts, c.optim.class_weights)
        self.weights = None if weights is None else weights.to(self.device)
        self.rng = np.random.default_rng([c.seed, self.world.rank])  # each rank its own windows
        self.batches_per_epoch = c.batches_per_epoch or max(
            1, self.train_set.steps // (c.batch * c.window.seq_len)
        )
        self.epoch, self.best, self.hx = 0, -math.inf, None
        if resume:
            self._resume()

    def _initial_policy(self) -> ConvCfC:
        """A fresh policy from the config, or the `init` checkpoint's (for this dataset's game).
        The data decides its spaces; a fresh policy of state vectors takes their mean and std
        from the train split."""
        c, meanings, spec = self.config, self.train_set.action_meanings, self.train_set.manifest
        if c.init is None:
            policy = ConvCfC(
                dataclasses.replace(
                    c.policy,
                    n_actions=spec.action.dim if spec.action.is_box else len(meanings),
                    action_meanings=meanings,
                    stack=self.env_config.stack,
                    screen_size=self.env_config.screen_size,
                    obs=spec.obs,
                    action=spec.action,
                    obs_mask=self.env_config.obs_mask,
                )
            )
            if spec.obs.kind == "vector":
                policy.conv_block.set_statistics(self.train_set.all_steps("frames"))
            return policy
        loaded = load_policy(c.init)
        check_policy_matches_env(loaded.policy, meanings, spec.action)
        if loaded.env_config != self.env_config:
            raise ValueError(
                f"{c.init} was trained on {loaded.env_config}, the data is {self.env_config}"
            )
        return loaded.policy.train()

    def train_step(self, batch, hx=None) -> tuple[float, float]:
        """One optimizer step on a Batch from state `hx` (None: zeros); returns (loss,
        accuracy). The final state, detached, is kept in `self.hx` for stored-state training."""
        batch = batch.to(self.device, non_blocking=True)
        w = self.config.window
        burn_in = w.burn_in if w.horizon == "burn-in" else 0
        loss, logits, labels, hx = window_loss(
            self.model, batch, self.weights, hx, burn_in, reduction="sum"
        )
        self.hx = detach(hx)
        # the global batch's (weighted) mean: the sums of all ranks over the sum of the
        # weights of all their labels; DDP averages the gradients, hence the factor `size`
        count = torch.tensor(float(len(labels)), device=loss.device)
        weight = count if self.weights is None else self.weights[labels].sum()
        correct = agreement(logits, labels).sum()
        stats = torch.stack([loss.detach(), weight, correct.float(), count])  # one host sync
        total, weight_all, correct_all, count_all = distributed.all_sum(stats.tolist())
        loss = loss * (self.world.size / weight_all)
        if not math.isfinite(total):
            kept = (
                f"the last good checkpoint, {self.out / 'last.safetensors'}, is from epoch "
                f"{self.epoch}"
                if self.epoch
                else "no checkpoint was written yet"
            )
            raise TrainingError(
                f"loss became {total / weight_all} in epoch {self.epoch + 1}; training stopped and "
                f"{kept}. Try a lower --lr or --grad-clip"
            )
        self.optimizer.zero_grad(set_to_none=True)
        with distributed.collective("averaging gradients"):
            loss.backward()
        torch.nn.utils.clip_grad_norm_(self.policy.parameters(), self.config.optim.grad_clip)
        self.optimizer.step()
        return total / weight_all, correct_all / count_all

    @property
    def progress(self) -> bool:
        """Bars and epoch lines: where asked, and on rank 0 only."""
        return self.config.progress and self.world.main

    @property
    def local_batch(self) -> int:
        """The windows this process draws a step: its share of the global batch."""
        return self.config.batch // self.world.size

    def batches(self):
        """This epoch's batches, gathered ahead: random windows, or episode streams (stored)."""
        c = self.config
        if c.window.horizon == "stored":  # new streams each epoch: resume stays exact
            draw = self.train_set.streams(self.local_batch, self.rng).next
        else:
            draw = lambda: self.train_set.sample(self.local_batch, self.rng)  # noqa: E731
        return prefetch(draw, self.batches_per_epoch, pin=self.device.type == "cuda")

    def train_epoch(self) -> dict:
        self.policy.train()
        losses, accs, t0 = [], [], time.perf_counter()
        stored, self.hx = self.config.window.horizon == "stored", None
        bar = tqdm(
            self.batches(),
            total=self.batches_per_epoch,
            desc=f"epoch {self.epoch + 1}",
            leave=False,
            disable=not self.progress,
        )
        for i, batch in enumerate(bar):
            step = self.epoch * self.batches_per_epoch + i
            for group in self.optimizer.param_groups:
                group["lr"] = self.learning_rate(step)
            loss, acc = self.train_step(batch, self.hx if stored else None)
            losses.append(loss)
            accs.append(acc)
            score = {self.score_key("train")[6:]: f"{np.mean(accs[-20:]):.3f}"}
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}", **score)
        frames = self.batches_per_epoch * self.config.batch * self.config.window.seq_len
        return {
            "train_loss": float(np.mean(losses)),
            self.score_key("train"): float(np.mean(accs)),
            "train_frames_per_s": frames / (time.perf_counter() - t0),
        }

    def learning_rate(self, step: int) -> float:
        """The learning rate of global step `step` (0-based) of this run."""
        total = self.config.epochs * self.batches_per_epoch
        return learning_rate(self.config.optim, step, total)

    def recalibrate_batchnorm(self) -> None:
        """Set every BatchNorm's running statistics to the exact average over
        `bn_recalibration` training batches of this epoch's final weights (PreciseBN). The
        momentum averages trail weights that moved during the epoch: on the tutorial encoder
        they cost 3 points of val accuracy (experiments/log.md). The batches come from a
        generator of their own, so the training batches are those of a run without it."""
        n = self.config.bn_recalibration
        if not n:  # keep the momentum averages
            return
        rng = np.random.default_rng([self.config.seed, self.world.rank, self.epoch, 1])
        draws = (self.train_set.sample(self.local_batch, rng) for _ in range(n))
        recalibrate_batchnorm(self.policy, (b.to(self.device, non_blocking=True) for b in draws))

    @torch.no_grad()
    def validate(self) -> dict:
        if not len(self.val_set):
            return {"val_loss": None, self.score_key("val"): None}
        self.policy.eval()
        loss_sum, correct, count = 0.0, 0, 0
        for i, batch in enumerate(self.val_set.batches(self.config.batch)):
            if i % self.world.size != self.world.rank:  # each rank its share of the batches
                continue
            batch = batch.to(self.device, non_blocking=True)
            loss, logits, labels, _ = window_loss(self.policy, batch)
            loss_sum += loss.item() * len(labels)
            correct += agreement(logits, labels).sum().item()
            count += len(labels)
        loss_sum, correct, count = distributed.all_sum([loss_sum, correct, count])
        return {"val_loss": loss_sum / count, self.score_key("val"): correct / count}

    def score_key(self, split: str) -> str:
        """The agreement's metric: {split}_acc (discrete) or {split}_mae (Box, scaled)."""
        return f"{split}_{'mae' if self.policy.config.action.is_box else 'acc'}"

    def closed_loop(self) -> dict:
        c = self.config
        if c.eval_episodes < 1:
            return {"return_mean": None}
        result = split_over_ranks(  # under torchrun, each rank plays its share
            lambda n, seed: evaluate_policy(
                self.policy, self.env_config, n, c.eval_envs, seed, self.device
            ),
            c.eval_episodes,
            10_000 + self.epoch,
        )
        return {
            "return_mean": result.mean,
            "return_std": result.std,
            "returns": result.returns,
            "eval_steps_per_s": result.steps / result.seconds,
        }

    def fit(self, on_epoch=None) -> list[dict]:
        """Train until `epochs`; returns this call's metric rows. `on_epoch(row)` is called
        after each epoch, else the epoch's line is printed (on rank 0)."""
        rows = []  # the run folder appears with the first epoch's files (atomic_path makes it)
        epochs = range(self.epoch, self.config.epochs)
        try:
            for _ in tqdm(epochs, desc="train", unit="epoch", disable=not self.progress):
                row = {"epoch": self.epoch + 1, **self.train_epoch()}
                self.recalibrate_batchnorm()
                row.update(self.validate())
                self.epoch += 1
                row.update(self.closed_loop())
                self._save(row)
                if self.board is not None and self.world.main:
                    self.board.log(row)
                rows.append(row)
                if on_epoch is not None:
                    on_epoch(row)
                elif self.progress:
                    tqdm.write(epoch_line(row))
        finally:
            if self.board is not None:
                self.board.close()
        return rows

    def _save(self, row: dict) -> None:
        """Write the epoch's checkpoints, resume state and metrics row (rank 0, with every
        rank's RNG states); a failed write (a full disk) stops training with what was kept
        and how to go on."""
        rngs = distributed.gather(self._rng_state())
        try:
            if self.world.main:
                self._write(row, rngs)
        except (OSError, SafetensorError) as e:
            raise TrainingError(
                f"could not write the run's files in {self.out} ({e}); the resume state holds "
                f"the last epoch written in full. Free space, then rerun with --resume"
            ) from None
        distributed.barrier("waiting for rank 0 to write the epoch's files")

    def _rng_state(self) -> dict:
        return {
            "numpy_rng": self.rng.bit_generator.state,
            "torch_rng": torch.get_rng_state().tolist(),
        }

    def _write(self, row: dict, rngs: list[dict]) -> None:
        ret = row["return_mean"] if row["return_mean"] is not None else -(row["val_loss"] or 0)
        improved = ret > self.best
        self.best = max(self.best, ret)
        meta = {"metrics": {k: v for k, v in row.items() if k != "returns"}}
        names = ["last.safetensors"] + ["best.safetensors"] * improved
        for name in names:
            save_policy(
                self.out / name, self.policy, self.env_config, self.epoch, meta, self.config
            )
        state = {
            "epoch": self.epoch,
            "best": self.best,
            "config": self.config.to_dict(),
            **rngs[0],
            **({"ranks": rngs} if len(rngs) > 1 else {}),
        }
        # the row before the state: a crash between them leaves a row past the state's epoch,
        # which a resume drops and then writes again, never a state without its row
        append_line(self.out / "metrics.jsonl", json.dumps(row))
        save_train_state(self.out / STATE, self.policy, self.optimizer, state)

    def _resume(self) -> None:
        state = load_train_state(self.out / STATE, self.policy, self.optimizer)
        self.epoch, self.best = state["epoch"], state["best"]
        ranks = state.get("ranks", [state])
        if len(ranks) != self.world.size:
            raise ValueError(
                f"cannot resume {self.out} with {self.world.size} processes: it was trained "
                f"with {len(ranks)} (its windows are drawn per process; use the same count)"
            )
        mine = ranks[self.world.rank]
        self.rng.bit_generator.state = mine["numpy_rng"]
        torch.set_rng_state(torch.tensor(mine["torch_rng"], dtype=torch.uint8))
        if self.world.main:
            truncate_metrics(self.out / "metrics.jsonl", self.epoch, self._last_row())

    def _last_row(self) -> dict | None:
        """The metrics row stored in last.safetensors (its epoch's, without "returns")."""
        try:
            metrics = read_config(self.out / "last.safetensors").get("metrics")
        except (OSError, ValueError):  # CheckpointError is a ValueError
            return None
        return metrics if isinstance(metrics, dict) else None
