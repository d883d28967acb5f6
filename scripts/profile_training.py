"""Where a training step's time goes, against the conv stack's own forward and backward.

Builds a small dataset from `follow_ball` (or reads --data), then times, in one process and
side by side (each round times every part once; medians are printed):

- sample: `SequenceDataset.sample(batch)` materialized as (B, T, 4, 84, 84) uint8 stacks;
- float: uint8 -> float32 / 255 of those stacks;
- encoder: the encoder's forward and backward on the float frames, channels_last as the
  trainer runs them on a CPU (the roofline: what the hardware does for the convolutions alone
  at this batch), and contiguous (NCHW) for comparison;
- cfc: the CfC's forward and backward over T steps on the encoder's features;
- optimizer: gradient clipping and Adam's step;
- step: `Trainer.train_step`, everything together (what training runs at).

    python scripts/profile_training.py --encoder nature --batch 16 --seq-len 16 --threads 2
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main(argv=None) -> None:
    from cfcclone.data import collect
    from cfcclone.experts.follower import follow_ball
    from cfcclone.models import PolicyConfig
    from cfcclone.training import OptimConfig, TrainConfig, Trainer, WindowConfig

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", help="a dataset (default: 3,000 follow_ball frames made here)")
    p.add_argument("--encoder", default="nature")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seq-len", type=int, default=16)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--rounds", type=int, default=10)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data
        if data is None:
            data = str(Path(tmp) / "data")
            collect(data, "breakout", follow_ball, frames=3_000, envs=1, progress=False)
        config = TrainConfig(
            data=data,
            out=str(Path(tmp) / "run"),
            policy=PolicyConfig(encoder=args.encoder),
            optim=OptimConfig(class_weights="sqrt"),
            window=WindowConfig(seq_len=args.seq_len),
            batch=args.batch,
            eval_episodes=0,
            progress=False,
            device="cpu",
        )
        trainer = Trainer(config)
        policy, rng = trainer.policy.train(), np.random.default_rng(0)
        batch = trainer.train_set.sample(args.batch, rng)
        b, t = batch.obs.shape[:2]
        frames = batch.obs.reshape(b * t, *batch.obs.shape[2:])
        x = frames.float().div_(255.0)
        features = policy.conv_block(x).detach().reshape(b, t, -1).requires_grad_()
        x_last = x.contiguous(memory_format=torch.channels_last)

        def encoder(x=x_last):
            policy.conv_block(x).sum().backward()

        def cfc():
            logits, _ = policy.rnn(features)
            logits.sum().backward()

        def optimizer():
            torch.nn.utils.clip_grad_norm_(policy.parameters(), config.optim.grad_clip)
            trainer.optimizer.step()

        parts = {
            "sample": lambda: trainer.train_set.sample(args.batch, rng).obs.contiguous(),
            "float": lambda: frames.float().div_(255.0),
            "encoder": encoder,
            "enc-nchw": lambda: encoder(x),
            "cfc": cfc,
            "optimizer": optimizer,
            "step": lambda: trainer.train_step(batch),
        }
        for fn in parts.values():  # warm-up
            fn()
        seconds = {name: [] for name in parts}
        for _ in range(args.rounds):
            for name, fn in parts.items():
                seconds[name].append(timed(fn))
    n = b * t
    med = {name: float(np.median(s)) for name, s in seconds.items()}
    print(
        f"{args.encoder} encoder, batch {b} x {t} = {n} frames, "
        f"{torch.get_num_threads()} torch threads, median of {args.rounds}"
    )
    print(f"{'part':<10} {'ms':>8} {'frames/s':>10} {'of step':>8}")
    for name, s in med.items():
        print(f"{name:<10} {1e3 * s:8.1f} {n / s:10.0f} {s / med['step']:8.0%}")
    print(
        f"training step {n / med['step']:.0f} frames/s = {med['encoder'] / med['step']:.0%} of "
        f"the conv stack's forward and backward alone ({n / med['encoder']:.0f} frames/s)"
    )


if __name__ == "__main__":
    main()
