"""`cfcclone collect`: expert demonstrations, written shard by shard by parallel workers.

Each of K worker processes plays its own env with its own copy of the expert and writes every
finished episode as one shard (see `cfcclone.data.format`). Episode j of worker w is reset with
the seed `episode_seed(seed, w, j)`, so a collection is deterministic, and `resume=True`
after a crash continues each worker at its first missing episode and writes exactly what an
uninterrupted run would have. A worker stops when its share of the frame budget is spent; the
episode in progress then is kept, marked incomplete.
"""

from __future__ import annotations

import multiprocessing as mp
import pickle
import queue as queue_module
import traceback
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from cfcclone.data.format import (
    MANIFEST,
    Segment,
    list_shards,
    read_manifest,
    read_shard_meta,
    summarize,
    sweep_temporaries,
    write_manifest,
    write_shard,
)
from cfcclone.envs import AtariEnv, EnvConfig, action_meanings, check_game

_REPORT_EVERY = 256


class CollectionError(RuntimeError):
    """A collection worker failed or died; finished shards are kept for --resume."""


def episode_seed(seed: int, worker: int, episode: int) -> int:
    """The reset seed of episode `episode` of worker `worker`."""
    return int(np.random.SeedSequence([seed, worker, episode]).generate_state(1)[0])


def _shard_name(worker: int, episode: int) -> str:
    return f"w{worker:03d}-e{episode:06d}"


def _resume_point(out: Path, worker: int) -> tuple[int, int]:
    """Steps already stored by `worker` and the index of its next episode."""
    metas = [read_shard_meta(p) for p in list_shards(out) if p.name.startswith(f"w{worker:03d}-")]
    names = [m["name"] for m in metas]
    if names != [_shard_name(worker, j) for j in range(len(names))]:
        raise ValueError(f"{out}: worker {worker}'s shards are not consecutive episodes: {names}")
    return sum(m["steps"] for m in metas), len(metas)


def _play_episode(out, env, expert, seed, worker, episode, limit, report) -> int:
    """Play (up to `limit` steps of) one episode and write it as a shard; returns its steps."""
    seed = episode_seed(seed, worker, episode)
    obs, info = env.reset(seed=seed)
    frames, actions, rewards = [], [], []
    done, start = False, True
    while len(actions) < limit and not done:
        batched = {k: np.asarray(v)[None] for k, v in info.items()}
        action = expert.act(obs[None], batched, np.array([start]))[0]
        frames.append(obs[-1])
        obs, reward, terminated, truncated, info = env.step(int(action))
        actions.append(info["action"])
        rewards.append(reward)
        done, start = terminated or truncated, False
        if len(actions) % _REPORT_EVERY == 0:
            report(("steps", worker, _REPORT_EVERY))
    report(("steps", worker, len(actions) % _REPORT_EVERY))
    ret = float(np.sum(rewards))
    segment = Segment(0, 0, len(actions), complete=done, ret=ret, seed=seed)
    write_shard(
        out,
        _shard_name(worker, episode),
        np.stack(frames),
        np.asarray(actions),
        np.asarray(rewards, dtype=np.float32),
        [segment],
    )
    report(("episode", worker, ret if done else None))
    return len(actions)


def _run_worker(out, worker, budget, env_config, expert_spec, seed, report) -> None:
    """Play episodes until this worker has `budget` steps on disk."""
    import torch

    from cfcclone.experts import make_expert

    report = getattr(report, "put", report)  # a multiprocessing queue, or a callback
    try:
        torch.set_num_threads(1)
        env = AtariEnv(EnvConfig.from_dict(env_config))
        expert = make_expert(expert_spec, env.config.game, num_envs=1)
        steps, episode = _resume_point(Path(out), worker)
        while steps < budget:
            steps += _play_episode(
                Path(out), env, expert, seed, worker, episode, budget - steps, report
            )
            episode += 1
        report(("done", worker, None))
    except BaseException:
        report(("error", worker, traceback.format_exc()))
        raise


def _prepare(out: Path, settings: dict, resume: bool) -> None:
    if (out / MANIFEST).exists():
        if not resume:
            raise FileExistsError(
                f"{out} already holds a dataset; pass --resume to continue it, or another --out"
            )
        old = read_manifest(out)
        for key in ("game", "env", "expert", "seed", "workers"):
            if old.get(key) != settings[key]:
                raise ValueError(
                    f"cannot resume {out}: {key} is {settings[key]!r}, "
                    f"the dataset has {old.get(key)!r}"
                )
    elif out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not a cfcclone dataset; choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    sweep_temporaries(out)


def collect(
    out: str | Path,
    game: str = "breakout",
    expert="scripted",
    frames: int = 100_000,
    envs: int = 2,
    seed: int = 0,
    resume: bool = False,
    progress: bool = True,
    **env_overrides,
) -> dict:
    """Collect `frames` expert steps into dataset `out` with `envs` worker processes.

    `expert` is "scripted", a checkpoint path, "module:function" or a picklable callable
    (any callable where envs == 1: that worker then runs in this process). `env_overrides`
    are EnvConfig fields. Returns the final manifest.
    """
    out = Path(out)
    check_game(game)
    if frames < 1 or envs < 1:
        raise ValueError(f"expected frames >= 1 and envs >= 1, got {frames} and {envs}")
    env_config = EnvConfig(game=game, **env_overrides).to_dict()
    name = expert if isinstance(expert, str) else getattr(expert, "__qualname__", repr(expert))
    settings = {
        "game": game,
        "env": env_config,
        "expert": name,
        "seed": seed,
        "workers": envs,
        "action_meanings": action_meanings(game),
    }
    _prepare(out, settings, resume)
    write_manifest(out, {**settings, "frames_target": frames, "status": "collecting"})
    budgets = [frames // envs + (w < frames % envs) for w in range(envs)]
    already = sum(_resume_point(out, w)[0] for w in range(envs))
    returns = []
    with tqdm(
        total=frames,
        initial=already,
        unit="frame",
        unit_scale=True,
        desc=f"collect {game}",
        disable=not progress,
    ) as bar:

        def report(message):
            kind, worker, value = message
            if kind == "steps":
                bar.update(value)
            elif kind == "episode" and value is not None:
                returns.append(value)
                bar.set_postfix(episodes=len(returns), ret=f"{np.mean(returns[-10:]):.1f}")

        jobs = [(str(out), w, budgets[w], env_config, expert, seed) for w in range(envs)]
        if envs == 1 and not isinstance(expert, str):
            _run_worker(*jobs[0], report)
        else:
            _run_processes(jobs, report)
    summary = summarize(out)
    write_manifest(out, {**settings, "frames_target": frames, "status": "complete", **summary})
    return read_manifest(out)


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
                    raise CollectionError(f"a collection worker died (exit code {code})") from None
                continue
            if kind == "error":
                raise CollectionError(f"collection worker {worker} failed:\n{value}")
            if kind == "done":
                running -= 1
            else:
                report((kind, worker, value))
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
            p.join()
