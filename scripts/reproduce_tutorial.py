"""Reproduce the NCP Atari behavior-cloning tutorial with cfcclone.

The tutorial's setup: the `tutorial` encoder (its ConvBlock, parameter for parameter), Adam at
1e-4, batch 32, windows of 32 steps, 50 epochs, 10 closed-loop episodes after each epoch. It
prints the tutorial's per-epoch lines. The data is the tutorial's own files where you have
them (--ncps-data DIR, imported once), else a scripted RAM expert's (collected once; the
`tracker` by default, the expert that clones well).

    python scripts/reproduce_tutorial.py                      # scripted-expert data
    python scripts/reproduce_tutorial.py --ncps-data DIR      # the tutorial's npz files

A run is resumable: the same command continues from its last finished epoch.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cfcclone.data import collect
from cfcclone.data.manifest import MANIFEST, Manifest
from cfcclone.data.ncps_format import import_ncps
from cfcclone.models import PolicyConfig
from cfcclone.training import OptimConfig, TrainConfig, Trainer, WindowConfig


def prepare_data(args, data: Path) -> None:
    if (data / MANIFEST).exists() and Manifest.read(data).status == "complete":
        print(f"reusing {data}")
    elif args.ncps_data:
        import_ncps(args.ncps_data, data, game=args.game)
    else:
        collect(
            data,
            args.game,
            args.expert,
            args.frames,
            envs=2,
            seed=args.seed,
            resume=(data / MANIFEST).exists(),
        )


def print_epoch(row: dict) -> None:
    """The tutorial's two lines per epoch."""
    acc = "n/a" if row["val_acc"] is None else f"{100 * row['val_acc']:0.2f}%"
    loss = "n/a" if row["val_loss"] is None else f"{row['val_loss']:0.4g}"
    print(f"Epoch {row['epoch']}, val_loss={loss}, val_acc={acc}")
    print(f"Mean return {row['return_mean']} (n={len(row['returns'])})", flush=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--ncps-data", help="a folder of the tutorial's {train,val}_*.npz files")
    p.add_argument("--out", default="runs/tutorial")
    p.add_argument("--game", default="breakout")
    p.add_argument("--expert", default="tracker", help="the scripted expert: tracker or planner")
    p.add_argument("--frames", type=int, default=300_000, help="scripted-expert frames")
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument(
        "--batches-per-epoch",
        type=int,
        default=0,
        help="batches of 32 windows per epoch (0: one pass over the data, as the tutorial)",
    )
    p.add_argument("--eval-episodes", type=int, default=10, help="closed-loop episodes an epoch")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    out = Path(args.out)
    data, run = out / "data", out / "run"
    prepare_data(args, data)
    config = TrainConfig(
        data=str(data),
        out=str(run),
        policy=PolicyConfig(encoder="tutorial"),
        optim=OptimConfig(lr=1e-4),
        window=WindowConfig(seq_len=32),
        batch=32,
        epochs=args.epochs,
        batches_per_epoch=args.batches_per_epoch,
        eval_episodes=args.eval_episodes,
        eval_envs=max(1, min(10, args.eval_episodes)),
        device=args.device,
        seed=args.seed,
    )
    Trainer(config, resume=(run / "train_state.safetensors").exists()).fit(on_epoch=print_epoch)
    return 0


if __name__ == "__main__":
    sys.exit(main())
