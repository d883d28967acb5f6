"""`cfcclone collect`: expert demonstrations, written shard by shard by parallel workers.

Each of K worker processes plays its own env with its own copy of the expert, through the one
rollout loop (`cfcclone.rollout`), and writes every finished episode as one shard through an
`EpisodeWriter` (see `cfcclone.data.format`). Episode j of worker w is reset with
the seed `episode_seed(seed, w, j)`, so a collection is deterministic, and `resume=True`
after a crash continues each worker at its first missing episode and writes exactly what an
uninterrupted run would have. A worker stops when its share of the frame budget is spent; the
episode in progress then is kept, marked incomplete. Under torchrun, `envs` and `frames` stay
totals: rank r plays workers r, r + size, ..., so the shards are those of one process with the
same `envs`, and rank 0 prepares the folder and writes the manifest, between barriers.
"""

from __future__ import annotations

import ctypes
import dataclasses
import multiprocessing as mp
import os
import pickle
import queue as queue_module
import shutil
import signal
import sys
import warnings
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from cfcclone import distributed
from cfcclone.data.format import EpisodeWriter, list_shards, read_shard_meta, sweep_temporaries
from cfcclone.data.manifest import MANIFEST, Manifest
from cfcclone.envs import EnvConfig, check_game, env_specs
from cfcclone.experts import expert_name, make_expert
from cfcclone.rollout import elapsed_times, rollout
from cfcclone.vector_env import make_vector_env

_REPORT_EVERY = 256
WORKER_BYTES = 200_000_000
"""Memory of one collection worker (torch, the emulator and an episode's frames)."""


class CollectionError(RuntimeError):
    """A collection worker failed or died; finished shards are kept for --resume."""


def episode_seed(seed: int, worker: int, episode: int) -> int:
    """The reset seed of episode `episode` of worker `worker`."""
    return int(np.random.SeedSequence([seed, worker, episode]).generate_state(1)[0])


def shard_name(worker: int, episode: int) -> str:
    return f"w{worker:03d}-e{episode:06d}"


def resume_point(out: Path, worker: int) -> tuple[int, int]:
    """Steps already stored by `worker` and the index of its next episode."""
    metas = [read_shard_meta(p) for p in list_shards(out) if p.name.startswith(f"w{worker:03d}-")]
    names = [m["name"] for m in metas]
    if names != [shard_name(worker, j) for j in range(len(names))]:
        raise ValueError(f"{out}: worker {worker}'s shards are not consecutive episodes: {names}")
    return sum(m["steps"] for m in metas), len(metas)


def _play_episode(writer: EpisodeWriter, env, expert, seed: int, limit: int, report, worker) -> int:
    """Play (up to `limit` steps of) one episode, reset with `seed`, and write it as a shard;
    returns its steps. The recorded action is the one ALE executed."""
    for t in rollout(env, expert, seed):
        elapsed = elapsed_times(t.info, t.episode_start) if "duration" in t.info else None
        writer.add(t.obs, t.executed, t.reward, elapsed=elapsed)
        steps, done = writer.steps(0), bool(t.done[0])
        if steps % _REPORT_EVERY == 0:
            report(("steps", worker, _REPORT_EVERY))
        if done or steps >= limit:
            break
    report(("steps", worker, steps % _REPORT_EVERY))
    meta = writer.end(0, complete=done, seed=seed)
    ret = sum(s["ret"] for s in meta["segments"])
    report(("episode", worker, ret if done else None))
    return steps


def _run_worker(out, worker, budget, env_config, expert_spec, seed, quota, report) -> None:
    """Play episodes until this worker has `budget` steps (or `quota` episodes) on disk."""
    import torch

    if hasattr(report, "put"):  # a worker process: die with the parent, never orphaned
        _die_with_parent()
    report = getattr(report, "put", report)  # a multiprocessing queue, or a callback
    try:
        torch.set_num_threads(1)
        config = EnvConfig.from_dict(env_config)
        env = make_vector_env(num_envs=1, config=config, ram=True)
        expert = make_expert(expert_spec, config.game, num_envs=1)
        steps, first = resume_point(Path(out), worker)
        names = lambda _, k: shard_name(worker, first + k)  # noqa: E731
        writer = EpisodeWriter(out, 1, names, game=config.game)
        while steps < budget and (quota is None or first + writer.count[0] < quota):
            episode = first + writer.count[0]
            seed_j = episode_seed(seed, worker, episode)
            steps += _play_episode(writer, env, expert, seed_j, budget - steps, report, worker)
        report(("done", worker, None))
    except BaseException as e:
        report(("error", worker, f"{type(e).__name__}: {e}"))
        raise


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies (prctl PR_SET_PDEATHSIG)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        pass  # not Linux: a killed parent may leave its workers to finish their episode
    if os.getppid() == 1:  # the parent died before the request
        os._exit(1)


def _available_memory() -> int | None:
    """Bytes the kernel could give now (MemAvailable, page cache included), where known."""
    try:
        with open("/proc/meminfo") as f:
            kib = next(int(line.split()[1]) for line in f if line.startswith("MemAvailable:"))
        return kib * 1024
    except (OSError, StopIteration, ValueError):
        return None


def check_workers(envs: int) -> None:
    """Warn above the core count; refuse more workers than memory holds (~200 MB each)."""
    cores = os.cpu_count() or 1
    if envs > cores:
        warnings.warn(
            f"{envs} collection workers on {cores} cores: they will share them", stacklevel=3
        )
    free = _available_memory()
    if free is None:
        return
    if envs * WORKER_BYTES > free:
        raise ValueError(
            f"{envs} collection workers need about {envs * WORKER_BYTES / 1e9:.0f} GB "
            f"({WORKER_BYTES / 1e6:.0f} MB each), more than the {free / 1e9:.0f} GB free; "
            f"use at most --envs {max(1, free // WORKER_BYTES)}"
        )


def prepare_out(out: Path, settings: Manifest, resume: bool) -> None:
    """Make `out` ready for a recording of `settings`: new, or (with resume) the same game,
    env, expert, seed and workers as the dataset there; temporaries of a crash swept."""
    if (out / MANIFEST).exists():
        if not resume:
            raise FileExistsError(
                f"{out} already holds a dataset; pass --resume to continue it, or another --out"
            )
        old = Manifest.read(out)
        old = dataclasses.replace(old, expert=expert_name(old.expert))  # "scripted" is "planner"
        for key in ("game", "env", "expert", "seed", "workers"):
            if getattr(old, key) != getattr(settings, key):
                raise ValueError(
                    f"cannot resume {out}: {key} is {getattr(settings, key)!r}, "
                    f"the dataset has {getattr(old, key)!r}"
                )
    elif out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not a cfcclone dataset; choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    sweep_temporaries(out)


UNGUARDED = (
    "collect was called while a worker process started: the script that calls it has no "
    '`if __name__ == "__main__":` guard, and each worker (started with spawn) re-runs the '
    "script's top level; put the call under that guard (as with PyTorch's DataLoader workers)"
)
UNGUARDED_EXIT = 3
"""A worker's exit code where it found itself re-running an unguarded script."""


def collect(
    out: str | Path,
    game: str = "breakout",
    expert="planner",
    frames: int = 100_000,
    envs: int = 2,
    seed: int = 0,
    resume: bool = False,
    progress: bool = True,
    episodes: int | None = None,
    **env_overrides,
) -> Manifest:
    """Collect `frames` expert steps into dataset `out` with `envs` worker processes.

    `expert` is "planner", "tracker", a checkpoint path, "module:function" or a picklable
    callable (any callable where envs == 1: that worker then runs in this process).
    `env_overrides` are EnvConfig fields. Returns the final Manifest.

        from cfcclone import collect
        collect("data/breakout", "breakout", "tracker", frames=100_000, envs=2)

    Args:
        out: the dataset folder to write (or, with resume, to continue).
        game: the ALE game (snake_case ROM name), or a gymnasium env id (Hopper-v5).
        expert: planner, tracker, a checkpoint or state expert (.safetensors), sb3:PATH.zip
            or module:function.
        frames: expert steps to record, over all workers.
        envs: worker processes, each playing its own env.
        seed: episode j of worker w is reset with a seed derived from (seed, w, j).
        resume: continue an interrupted collection where its last finished shard left off.
        episodes: stop after this many episodes, over all workers (the frames still cap it).
    """
    if getattr(mp.current_process(), "_inheriting", False):
        # a spawned worker is re-running the caller's script, which has no main guard
        sys.stderr.write(f"cfcclone: {UNGUARDED}\n")
        raise SystemExit(UNGUARDED_EXIT)
    out = Path(out)
    env = EnvConfig(game=game, **env_overrides)
    if env.kind == "ale":
        check_game(game)
    if frames < 1 or envs < 1 or (episodes is not None and episodes < 1):
        raise ValueError(
            f"expected frames, envs and episodes >= 1, got {frames}, {envs} and {episodes}"
        )
    check_workers(envs)
    obs_spec, action_spec, meanings = env_specs(env)  # an unknown env id fails here
    make_expert(expert, game, num_envs=1)  # a bad expert fails here, before anything is written
    settings = Manifest(
        game=game,
        env=env,
        obs=obs_spec,
        action=action_spec,
        action_meanings=meanings,
        expert=expert_name(expert),
        seed=seed,
        workers=envs,
        frames_target=frames,
        status="collecting",
    )
    world = distributed.init()  # under torchrun, rank r plays workers r, r + size, ...
    if world.main:
        prepare_out(out, settings, resume)
        settings.write(out)
    distributed.barrier("waiting for rank 0 to prepare the dataset")
    budgets = [frames // envs + (w < frames % envs) for w in range(envs)]
    mine = list(world.share(envs))
    quotas = [None if episodes is None else episodes // envs + (w < episodes % envs)
              for w in range(envs)]  # fmt: skip
    jobs = [(str(out), w, budgets[w], env.to_dict(), expert, seed, quotas[w]) for w in mine]
    already = sum(resume_point(out, w)[0] for w in mine)
    where = f" (rank {world.rank} of {world.size})" * (world.size > 1)
    with tqdm(total=sum(budgets[w] for w in mine), initial=already, unit="frame",
              unit_scale=True, desc=f"collect {game}{where}",
              disable=not progress or not world.main) as bar:  # fmt: skip
        try:
            if not jobs:  # a rank beyond the workers' count has none
                pass
            elif envs == 1 and not isinstance(expert, str):
                _run_worker(*jobs[0], _reporter(bar))
            else:
                _run_processes(jobs, _reporter(bar))
        except BaseException:
            if world.size == 1 and not resume and not list_shards(out):
                shutil.rmtree(out, ignore_errors=True)  # nothing to resume: leave nothing
            raise
    distributed.barrier("waiting for the other ranks' workers")
    manifest = settings.summarized(out, status="complete")
    if world.main:
        manifest.write(out)
    return manifest


def _reporter(bar):
    """The workers' messages to the progress bar: frames done, returns of finished episodes."""
    returns = []

    def report(message):
        kind, _, value = message
        if kind == "steps":
            bar.update(value)
        elif kind == "episode" and value is not None:
            returns.append(value)
            bar.set_postfix(episodes=len(returns), ret=f"{np.mean(returns[-10:]):.1f}")

    return report


def _run_processes(jobs: list[tuple], report) -> None:
    if not isinstance(jobs[0][4], str):
        try:
            pickle.dumps(jobs[0][4])
        except Exception as e:
            raise ValueError(
                f"a callable expert must be picklable (a module-level function) to run in "
                f"worker processes ({e}); use envs=1 to run it in this process"
            ) from None
    ctx = mp.get_context("spawn")
    messages = ctx.Queue()
    procs = [ctx.Process(target=_run_worker, args=(*job, messages), daemon=True) for job in jobs]
    for p in procs:
        p.start()
    running = len(procs)
    try:
        while running:
            try:
                kind, worker, value = messages.get(timeout=1.0)
            except queue_module.Empty:
                dead = [p for p in procs if p.exitcode not in (None, 0)]
                if dead:
                    code = dead[0].exitcode
                    if code == UNGUARDED_EXIT:
                        raise CollectionError(UNGUARDED) from None
                    raise CollectionError(f"a collection worker died (exit code {code})") from None
                continue
            if kind == "error":
                raise CollectionError(f"collection worker {worker} failed: {value}")
            if kind == "done":
                running -= 1
            else:
                report((kind, worker, value))
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
            p.join()
