"""Is a `tutorial`-encoder checkpoint's val accuracy set by its BatchNorm running statistics?

Scores the val split of a dataset three ways: as validation runs (eval mode: the running
statistics saved in the checkpoint), with each val batch normalised by its own statistics
(train-mode BatchNorm, no gradients), and after recalibrating the running statistics as an
exact average over N training batches (momentum None, no gradients, then eval mode). Where
the first is far below the other two, the swings of the tutorial's per-epoch val accuracy
come from the running statistics, not from the weights.

    python scripts/bn_check.py runs/tutorial/run/last.safetensors --data runs/tutorial/data
"""

from __future__ import annotations

import argparse
import copy

import numpy as np
import torch

from cfcclone import load_policy
from cfcclone.data import SequenceDataset
from cfcclone.training.steps import recalibrate_batchnorm, window_loss


@torch.no_grad()
def score(policy, dataset: SequenceDataset, batch: int) -> tuple[float, float]:
    """(mean loss, accuracy) over every val window, in the policy's current mode."""
    loss_sum, correct, count = 0.0, 0, 0
    for b in dataset.batches(batch):
        loss, logits, labels, _ = window_loss(policy, b)
        loss_sum += loss.item() * labels.numel()
        correct += (logits.argmax(-1) == labels).sum().item()
        count += labels.numel()
    return loss_sum / count, correct / count


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint")
    p.add_argument("--data", required=True)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--calibration-batches", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    loaded = load_policy(args.checkpoint)
    seq_len = loaded.train_config.window.seq_len if loaded.train_config else 32
    val = SequenceDataset(args.data, seq_len, "val", seed=args.seed)
    train = SequenceDataset(args.data, seq_len, "train", seed=args.seed)
    rows = {
        "running statistics (validation as it runs)": score(loaded.policy.eval(), val, args.batch)
    }
    batch_stats = copy.deepcopy(loaded.policy).train()
    rows["each batch's own statistics"] = score(batch_stats, val, args.batch)
    calibrated = copy.deepcopy(loaded.policy)
    rng = np.random.default_rng(args.seed)
    draws = (train.sample(args.batch, rng) for _ in range(args.calibration_batches))
    recalibrate_batchnorm(calibrated, draws)
    rows[f"recalibrated on {args.calibration_batches} training batches"] = score(
        calibrated.eval(), val, args.batch
    )
    print(f"{args.checkpoint} (epoch {loaded.epoch}), {len(val)} val windows of {seq_len} steps")
    for name, (loss, acc) in rows.items():
        print(f"  {name:45} val_loss={loss:.4g} val_acc={100 * acc:.2f}%")


if __name__ == "__main__":
    main()
