"""Plain BC under each training horizon against recurrent DAgger, at one budget of expert labels.

Every method gets the same number of expert labels and the same number of training batches:

- bc-zero, bc-burn-in, bc-stored: `--labels` frames of expert data, `--epochs` epochs with
  zero-state windows, burn-in windows (the first `--burn-in` steps warm the state) or
  stored-state truncated BPTT over whole episodes;
- dagger: half the labels as expert data, then `--rounds` rounds that share the other half,
  with `--epochs` split between the first student and the rounds (beta 0.5, halving).

All train at lr 1e-3 with a warmup (300 steps; 30 in a DAgger round, which starts from trained
weights) and cosine decay, 300 batches of 16 windows of 16 steps an epoch, sqrt class weights.

Each (method, seed) run ends with a greedy evaluation of its best checkpoint over
`--episodes` episodes, and the expert is scored by the same protocol. Finished runs are kept
(OUT/<method>/seed<N>/result.json), so an interrupted comparison continues where it stopped.
The table goes to stdout and OUT/table.md.

    python experiments/compare_horizons/run.py --out runs/compare
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from cfcclone.atomic import atomic_write_text
from cfcclone.checkpoint import load_policy
from cfcclone.config import replace_path
from cfcclone.dagger import DaggerConfig, run_dagger
from cfcclone.data import collect
from cfcclone.data.manifest import MANIFEST, Manifest
from cfcclone.envs import EnvConfig
from cfcclone.evaluation import evaluate_expert, evaluate_policy
from cfcclone.models import PolicyConfig
from cfcclone.training import OptimConfig, TrainConfig, Trainer, WindowConfig

METHODS = ("bc-zero", "bc-burn-in", "bc-stored", "dagger")


def _data(args, name: str, frames: int) -> Path:
    path = Path(args.out) / name
    done = (path / MANIFEST).exists() and Manifest.read(path).status == "complete"
    if not done:
        collect(
            path,
            args.game,
            args.expert,
            frames,
            envs=2,
            seed=args.data_seed,
            resume=(path / MANIFEST).exists(),
        )
    return path


def _recipe(args, seed: int) -> TrainConfig:
    return TrainConfig(
        policy=PolicyConfig(encoder=args.encoder),
        optim=OptimConfig(lr=args.lr, warmup=args.warmup, schedule="cosine", class_weights="sqrt"),
        window=WindowConfig(seq_len=args.seq_len),
        batch=args.batch,
        batches_per_epoch=args.batches_per_epoch,
        eval_episodes=args.epoch_episodes,
        eval_envs=4,
        seed=seed,
    )


def _train(args, method: str, seed: int, run: Path) -> Path:
    if method == "dagger":
        init_epochs = args.epochs - args.rounds * args.round_epochs
        init_labels = args.labels // 2
        # a round starts from trained weights: a short warmup, then the cosine decay
        recipe = {"epochs": args.round_epochs, "optim.warmup": args.round_warmup}
        config = DaggerConfig(
            init=str(_data(args, "data_half", init_labels)),
            out=str(run),
            expert=args.expert,
            rounds=args.rounds,
            labels_per_round=(args.labels - init_labels) // args.rounds,
            envs=8,
            train=replace_path(_recipe(args, seed), recipe),
            init_epochs=init_epochs,
            round_eval_episodes=args.epoch_episodes,
        )
        run_dagger(config, resume=(run / "dagger.json").exists())
        return Path(json.loads((run / "dagger.json").read_text())["student"])
    horizon = method.removeprefix("bc-")
    seq_len = args.seq_len + (args.burn_in if horizon == "burn-in" else 0)
    config = replace_path(
        _recipe(args, seed),
        {
            "data": str(_data(args, "data", args.labels)),
            "out": str(run),
            "epochs": args.epochs,
            "window": WindowConfig(seq_len=seq_len, horizon=horizon, burn_in=args.burn_in),
        },
    )
    Trainer(config, resume=(run / "train_state.safetensors").exists()).fit()
    return run / "best.safetensors"


def run_one(args, method: str, seed: int) -> dict:
    run = Path(args.out) / method / f"seed{seed}"
    done = run / "result.json"
    if done.exists():
        return json.loads(done.read_text())
    print(f"== {method}, seed {seed}", flush=True)
    checkpoint = _train(args, method, seed, run)
    loaded = load_policy(checkpoint)
    result = evaluate_policy(loaded.policy, loaded.env_config, args.episodes, 16, 1000 + seed)
    row = {"method": method, "seed": seed, "checkpoint": str(checkpoint), **result.summary()}
    atomic_write_text(done, json.dumps(row))
    print(f"   {method} seed {seed}: {result.line()}", flush=True)
    return row


def expert_row(args) -> dict:
    path = Path(args.out) / "expert.json"
    if not path.exists():
        result = evaluate_expert(args.expert, EnvConfig(game=args.game), args.episodes, 2)
        atomic_write_text(path, json.dumps(result.summary()))
    return json.loads(path.read_text())


def table(args, rows: list[dict], expert: dict) -> str:
    lines = [
        f"| method | expert labels | return, mean ± std over seeds | clone/expert | "
        f"per-seed means ({args.episodes} episodes each) |",
        "|---|---:|---:|---:|---|",
    ]
    for method in args.methods:
        means = [r["return_mean"] for r in rows if r["method"] == method]
        if not means:
            continue
        m = float(np.mean(means))
        lines.append(
            f"| {method} | {args.labels:,} | {m:.1f} ± {np.std(means):.1f} | "
            f"{m / expert['return_mean']:.2f} | {', '.join(f'{x:.1f}' for x in means)} |"
        )
    lines.append(
        f"| expert ({args.expert}) | - | {expert['return_mean']:.1f} ± "
        f"{expert['return_std']:.1f} (over episodes) | 1.00 | |"
    )
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", default="runs/compare")
    p.add_argument("--game", default="breakout")
    p.add_argument("--expert", default="tracker")
    p.add_argument("--labels", type=int, default=60_000, help="expert labels per method")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--encoder", default="nature")
    p.add_argument("--epochs", type=int, default=8, help="training epochs per method")
    p.add_argument("--batches-per-epoch", dest="batches_per_epoch", type=int, default=300)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seq-len", dest="seq_len", type=int, default=16)
    p.add_argument("--burn-in", dest="burn_in", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3, help="peak lr (cosine decay after warmup)")
    p.add_argument("--warmup", type=int, default=300, help="steps of lr warmup")
    p.add_argument(
        "--round-warmup", dest="round_warmup", type=int, default=30, help="... in a DAgger round"
    )
    p.add_argument("--rounds", type=int, default=3, help="DAgger rounds")
    p.add_argument("--round-epochs", dest="round_epochs", type=int, default=1)
    p.add_argument("--epoch-episodes", dest="epoch_episodes", type=int, default=4)
    p.add_argument("--episodes", type=int, default=30, help="final evaluation episodes")
    p.add_argument("--data-seed", dest="data_seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.epochs <= args.rounds * args.round_epochs:
        p.error("--epochs must exceed --rounds x --round-epochs (DAgger's first student)")
    rows = [run_one(args, m, s) for m in args.methods for s in args.seeds]
    text = table(args, rows, expert_row(args))
    atomic_write_text(Path(args.out) / "table.md", text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
