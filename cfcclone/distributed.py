"""Runs of several processes under `torchrun`: who this process is, and the few collectives
cfcclone needs.

`torchrun --nproc_per_node=N -m cfcclone train ...` starts N processes with RANK, WORLD_SIZE,
LOCAL_RANK and MASTER_ADDR/PORT in their environment; `init()` joins them into one process
group (gloo on the CPU, nccl on CUDA). Without torchrun, `world()` is the single process
(rank 0 of 1) and nothing here talks to anything, so every command runs as before.

A lost rank (a killed process, a dead node) makes the collectives of the others fail after
`TIMEOUT` at the latest (torchrun usually stops them sooner); `collective` turns that into a
`DistributedError` that says how to go on (`--resume`).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

TIMEOUT = timedelta(seconds=float(os.environ.get("CFCCLONE_DIST_TIMEOUT", 300)))
"""How long a collective waits for the other ranks before it fails."""


class DistributedError(RuntimeError):
    """Another rank is gone or failed; the message says what was kept and how to go on."""


@dataclass(frozen=True)
class World:
    """This process's place among the processes of one run."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0: the one that writes files and prints."""
        return self.rank == 0

    def share(self, n: int, i: int | None = None) -> range:
        """The items of 0..n-1 that rank `i` (default this rank) handles: i, i + size, ..."""
        return range(self.rank if i is None else i, n, self.size)


def world() -> World:
    """This process's World, from torchrun's environment (a single process without it)."""
    size = int(os.environ.get("WORLD_SIZE", 1))
    if size <= 1:
        return World()
    return World(int(os.environ["RANK"]), size, int(os.environ.get("LOCAL_RANK", 0)))


def init(device: torch.device | str = "cpu") -> World:
    """Join the run's process group where torchrun started several processes; returns World.
    gloo on the CPU, nccl on CUDA (each process on its LOCAL_RANK's GPU)."""
    w = world()
    if w.size > 1 and not dist.is_initialized():
        cuda = torch.device(device).type == "cuda"
        if cuda:
            torch.cuda.set_device(w.local_rank)
        dist.init_process_group("nccl" if cuda else "gloo", timeout=TIMEOUT)
    return w


@contextmanager
def collective(what: str):
    """Name the collective a lost rank broke, with how to go on."""
    try:
        yield
    except (RuntimeError, dist.DistBackendError) as e:
        if isinstance(e, DistributedError):
            raise
        raise DistributedError(
            f"rank {world().rank}: {what} failed, another rank is gone or failed "
            f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
            "what the last finished epoch wrote is kept: rerun the same command with --resume"
        ) from None


def all_sum(values: list[float], device="cpu") -> list[float]:
    """Elementwise sums of `values` over the ranks (the values themselves on one process)."""
    if world().size == 1:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=device)
    with collective("summing metrics"):
        dist.all_reduce(t)
    return t.tolist()


def gather(obj) -> list:
    """Every rank's `obj`, in rank order, on every rank ([obj] on one process)."""
    if world().size == 1:
        return [obj]
    out = [None] * world().size
    with collective("gathering results"):
        dist.all_gather_object(out, obj)
    return out


def barrier(what: str = "waiting for the other ranks") -> None:
    if world().size > 1:
        with collective(what):
            dist.barrier()


def close() -> None:
    """Leave the process group (where one was joined)."""
    if dist.is_initialized():
        dist.destroy_process_group()
