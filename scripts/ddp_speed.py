"""Training frames/s on 1 process against `torchrun --nproc_per_node=N`, side by side.

Each round trains one epoch of the same recipe (the demo's, without closed-loop evaluation)
as one process and as N under torchrun (gloo on the CPU), alternating, and reads
`train_frames_per_s` (the global batch's frames over the epoch's time) from metrics.jsonl.
Prints the median of each and their ratio.

    python scripts/ddp_speed.py --data runs/demo/data --rounds 3 --nproc 2
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def epoch_speed(data: str, nproc: int, batches: int, threads: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        options = [
            "--data",
            data,
            "--out",
            f"{tmp}/run",
            "--encoder",
            "nature",
            "--batch",
            "16",
            "--seq-len",
            "16",
            "--epochs",
            "1",
            "--batches-per-epoch",
            str(batches),
            "--eval-episodes",
            "0",
        ]
        if nproc == 1:
            command = [sys.executable, "-m", "cfcclone", "train", *options]
        else:
            command = [
                sys.executable,
                "-m",
                "torch.distributed.run",
                f"--nproc_per_node={nproc}",
                f"--master_port={free_port()}",
                "-m",
                "cfcclone",
                "train",
                *options,
            ]
        env = dict(os.environ, OMP_NUM_THREADS=str(threads))
        subprocess.run(command, env=env, check=True, capture_output=True)
        row = json.loads(Path(f"{tmp}/run/metrics.jsonl").read_text().splitlines()[0])
        return row["train_frames_per_s"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="a cfcclone dataset")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--nproc", type=int, default=2)
    p.add_argument("--batches", type=int, default=60, help="batches of the measured epoch")
    args = p.parse_args()
    cores = os.cpu_count() or 1
    one, many = [], []
    for r in range(args.rounds):
        one.append(epoch_speed(args.data, 1, args.batches, cores))
        many.append(epoch_speed(args.data, args.nproc, args.batches, max(1, cores // args.nproc)))
        print(
            f"round {r + 1}: 1 process {one[-1]:.0f}, {args.nproc} processes {many[-1]:.0f} "
            "frames/s",
            flush=True,
        )
    a, b = statistics.median(one), statistics.median(many)
    print(
        f"median: 1 process ({cores} threads) {a:.0f} frames/s; {args.nproc} processes "
        f"({max(1, cores // args.nproc)} threads each) {b:.0f} frames/s; ratio {b / a:.2f}"
    )


if __name__ == "__main__":
    main()
