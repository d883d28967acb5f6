"""Can a model learn the presses of a sparse-press expert (the Pong planner)? A probe.

Trains one model on a dataset's train split and prints, every --every steps, the val accuracy,
the recall of the move actions (RIGHT and LEFT) and the share of steps predicted as moves.
The models:

- `features`: an MLP on hand-made Pong features of the 4 stacked frames (ball and our
  paddle, found by their grey levels): how predictable the labels are from the frames;
- `ff`: the nature CNN and a linear head, per step (no recurrence);
- `cfc`: the ConvCfC (nature encoder), as `cfcclone train` builds it;
- `skip`: the ConvCfC with `skip_head` (a linear readout of the features beside the CfC).

The CNN models train on random windows of --seq-len steps through `window_loss`, as the
trainer does, with --class-weights; one thread, fp32.

    python experiments/probe_presses/run.py runs/pong/data --model cfc --steps 1500
    python experiments/probe_presses/run.py runs/pong/data --model features --epochs 15
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from cfcclone.data.dataset import SequenceDataset
from cfcclone.models import ConvCfC, PolicyConfig
from cfcclone.training.steps import class_weights, window_loss


def pong_features(frames: np.ndarray) -> np.ndarray:
    """(N, 84, 84) uint8 Pong frames -> (N, 6): ball seen, ball row and column, our paddle's
    mean row, top and bottom (the playfield is rows 14..76; the ball is >= 170 grey, our
    paddle > 130 in column 74)."""
    play = frames[:, 14:77].astype(np.int16)
    ball = play >= 170
    seen = ball.any((1, 2))
    rows, cols = np.arange(14, 77)[None, :, None], np.arange(84)[None, None, :]
    n = np.maximum(ball.sum((1, 2)), 1)
    by, bx = (ball * rows).sum((1, 2)) / n, (ball * cols).sum((1, 2)) / n
    pad = play[:, :, 74] > 130
    py = (pad * np.arange(14, 77)[None]).sum(1) / np.maximum(pad.sum(1), 1)
    top = np.where(pad.any(1), 14 + pad.argmax(1), -1)
    bottom = np.where(pad.any(1), 76 - pad[:, ::-1].argmax(1), -1)
    out = [seen, np.where(seen, by, 0), np.where(seen, bx, 0), py, top, bottom]
    return np.stack(out, 1).astype(np.float32)


def moves(actions: torch.Tensor, meanings: list[str]) -> torch.Tensor:
    """Where the labels are RIGHT or LEFT."""
    ids = [meanings.index(m) for m in ("RIGHT", "LEFT") if m in meanings]
    return torch.isin(actions, torch.tensor(ids))


def report(step, t0, loss, pred, labels, meanings) -> None:
    m = moves(labels, meanings)
    print(
        f"step {step} ({time.time() - t0:.0f}s) loss {loss:.3f} "
        f"val acc {(pred == labels).float().mean():.3f} "
        f"move recall {(pred[m] == labels[m]).float().mean():.3f} "
        f"moves predicted {moves(pred, meanings).float().mean():.3f}",
        flush=True,
    )


def probe_features(args) -> None:
    def table(split):
        ds = SequenceDataset(args.data, seq_len=1, split=split)
        xs, ys = [], []
        for k, (_, seg) in enumerate(ds.segments):
            f = pong_features(ds.frames(k, 0, seg.length))
            xs.append(np.concatenate([f[i : i + seg.length] for i in range(ds.stack)], 1))
            ys.append(ds.actions(k, 0, seg.length))
        return torch.tensor(np.concatenate(xs)), torch.tensor(np.concatenate(ys)), ds

    x, y, ds = table("train")
    xv, yv, _ = table("val")
    mu, sd = x.mean(0), x.std(0) + 1e-3
    x, xv = (x - mu) / sd, (xv - mu) / sd
    n = len(ds.action_meanings)
    net = torch.nn.Sequential(
        torch.nn.Linear(x.shape[1], 256), torch.nn.ReLU(), torch.nn.Linear(256, 256),
        torch.nn.ReLU(), torch.nn.Linear(256, n),
    )  # fmt: skip
    opt = torch.optim.Adam(net.parameters(), args.lr)
    g, t0 = torch.Generator().manual_seed(args.seed), time.time()
    for epoch in range(1, args.epochs + 1):
        for b in torch.randperm(len(y), generator=g).split(512):
            loss = torch.nn.functional.cross_entropy(net(x[b]), y[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            report(epoch, t0, loss.item(), net(xv).argmax(1), yv, ds.action_meanings)


class PerStep(torch.nn.Module):
    """The nature CNN and a linear head, step by step: a ConvCfC's interface, no CfC."""

    def __init__(self, policy: ConvCfC):
        super().__init__()
        self.policy = policy
        self.head = torch.nn.Linear(policy.conv_block.features, policy.config.n_actions)

    def forward(self, obs, hx=None, episode_start=None, prev_action=None):
        return self.head(self.policy.encode(obs)), hx


def probe_cnn(args) -> None:
    train = SequenceDataset(args.data, seq_len=args.seq_len, split="train")
    val = SequenceDataset(args.data, seq_len=args.seq_len, split="val")
    meanings = train.action_meanings
    config = PolicyConfig(encoder="nature", n_actions=len(meanings), skip_head=args.model == "skip")
    policy = ConvCfC(config)
    model = PerStep(policy) if args.model == "ff" else policy
    weights = class_weights(train.action_counts(), args.class_weights)
    opt = torch.optim.Adam(model.parameters(), args.lr)
    rng = np.random.default_rng(args.seed)
    val_batches = [val.sample(args.batch, np.random.default_rng(10_000 + i)) for i in range(16)]
    t0 = time.time()
    for step in range(1, args.steps + 1):
        loss, *_ = window_loss(model, train.sample(args.batch, rng), weights)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % args.every == 0:
            with torch.no_grad():
                out = [window_loss(model, b)[1:3] for b in val_batches]
            pred = torch.cat([logits.argmax(1) for logits, _ in out])
            report(step, t0, loss.item(), pred, torch.cat([y for _, y in out]), meanings)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("data")
    p.add_argument("--model", choices=("features", "ff", "cfc", "skip"), default="cfc")
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--class-weights", default="sqrt", choices=("none", "balanced", "sqrt"))
    p.add_argument("--steps", type=int, default=1500, help="CNN models: Adam steps")
    p.add_argument("--epochs", type=int, default=15, help="features: passes over the data")
    p.add_argument("--seq-len", type=int, default=16)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--every", type=int, default=250)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    (probe_features if args.model == "features" else probe_cnn)(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
