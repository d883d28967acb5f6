"""Closed-loop evaluation: exactly N episodes over vectorized envs, without favouring short ones.

Env i plays a fixed quota of episodes (N // envs, one more for the first N % envs) and only
its first `quota` episodes count. Stopping at the first N episodes to finish would over-sample
short, low-scoring ones. Policies run on the C++ vector env through the agent of
`cfcclone.runtime.make_agent` (torch's StatefulAgent, or onnxruntime's on the CPU), whose hidden
state stays on the device and is reset per env at each episode start; RAM experts run
on RAM envs with the same preprocessing. Both go through `cfcclone.rollout`, the one loop.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
from tqdm.auto import tqdm

from cfcclone import distributed
from cfcclone.agent import check_policy_matches_env
from cfcclone.device import resolve_device
from cfcclone.envs import EnvConfig
from cfcclone.rollout import EpisodeTally, rollout, rollout_threads
from cfcclone.runtime import Runtime, make_agent
from cfcclone.vector_env import default_batch, make_vector_env


@dataclass
class EvalResult:
    """Returns and lengths of the evaluated episodes, and the env steps and time it took."""

    returns: list[float]
    lengths: list[int]
    steps: int
    seconds: float

    @property
    def mean(self) -> float:
        return float(np.mean(self.returns))

    @property
    def std(self) -> float:
        return float(np.std(self.returns))

    def summary(self) -> dict:
        r, n = np.asarray(self.returns), np.asarray(self.lengths)
        return {
            "episodes": len(r),
            "return_mean": float(r.mean()),
            "return_std": float(r.std()),
            "return_min": float(r.min()),
            "return_max": float(r.max()),
            "length_mean": float(n.mean()),
            "steps_per_s": self.steps / max(self.seconds, 1e-9),
            **asdict(self),
        }

    def line(self) -> str:
        return (
            f"return {self.mean:.1f} ± {self.std:.1f} (min {min(self.returns):.0f}, "
            f"max {max(self.returns):.0f}) over {len(self.returns)} episodes, "
            f"mean length {np.mean(self.lengths):.0f} steps"
        )


RANK_SEED_STRIDE = 1_000_003
"""Under torchrun, rank r evaluates from seed + r * RANK_SEED_STRIDE."""


def split_over_ranks(evaluate, episodes: int, seed: int) -> EvalResult:
    """`evaluate(episodes, seed) -> EvalResult` with the episodes shared out over torchrun's
    ranks (rank r plays its share from its own seed) and the results gathered on every rank,
    in rank order; on one process, `evaluate(episodes, seed)` itself."""
    w = distributed.world()
    if w.size == 1:
        return evaluate(episodes, seed)
    share = len(w.share(episodes))
    part = evaluate(share, seed + RANK_SEED_STRIDE * w.rank) if share else None
    parts = [p for p in distributed.gather(None if part is None else asdict(part)) if p]
    return EvalResult(
        [r for p in parts for r in p["returns"]],
        [n for p in parts for n in p["lengths"]],
        sum(p["steps"] for p in parts),
        max(p["seconds"] for p in parts),
    )


def _check_episodes(episodes: int) -> None:
    if episodes < 1:
        raise ValueError(f"expected episodes >= 1, got {episodes}")


def episode_quotas(episodes: int, num_envs: int) -> np.ndarray:
    """(num_envs,) the quota rule: env i keeps its first `episodes // num_envs` episodes, one
    more for the first `episodes % num_envs` envs."""
    _check_episodes(episodes)
    return np.array([episodes // num_envs + (i < episodes % num_envs) for i in range(num_envs)])


def run_episodes(actor, env, episodes: int, seed: int = 0, progress: bool = False) -> EvalResult:
    """Play exactly `episodes` episodes of `actor` (a rollout Actor) with the quota rule."""
    n = env.num_envs
    quota = episode_quotas(episodes, n)
    returns: list[list[float]] = [[] for _ in range(n)]
    lengths: list[list[int]] = [[] for _ in range(n)]
    tally, steps, t0 = EpisodeTally(n), 0, time.perf_counter()
    with tqdm(total=episodes, desc="eval", unit="ep", disable=not progress) as bar:
        for t in rollout(env, actor, seed):
            steps += len(t.env_ids)
            for i, ret, length in tally.update(t):
                if len(returns[i]) < quota[i]:
                    returns[i].append(ret)
                    lengths[i].append(length)
                    bar.update(1)
            if all(len(returns[i]) >= quota[i] for i in range(n)):
                break
    flat = lambda xs: [x for per_env in xs for x in per_env]  # noqa: E731
    return EvalResult(flat(returns), flat(lengths), steps, time.perf_counter() - t0)


def evaluate_actor(
    actor_for,
    env_config: EnvConfig,
    episodes: int = 30,
    envs: int = 16,
    seed: int = 0,
    progress: bool = False,
    batch: int | None = None,
    threads: int | None = None,
) -> EvalResult:
    """Returns of the Actor `actor_for(num_envs)` on the C++ vector env by the same protocol
    (an exported ONNX policy: `actor_for = lambda n: OnnxAgent(path, n)`); `batch` and
    `threads` as in `evaluate_policy`."""
    _check_episodes(episodes)
    n = min(envs, episodes)
    if env_config.kind == "gym" or env_config.frame_skip_jitter:  # these step all together
        batch = None
    elif batch is None:
        batch = default_batch(n)
    env = make_vector_env(num_envs=n, num_threads=threads, batch_size=batch, config=env_config)
    try:
        actor = actor_for(env.num_envs)
        if hasattr(actor, "config"):  # a policy's agent: its actions must be the env's
            check_policy_matches_env(actor, env.action_meanings, getattr(env, "action_spec", None))
        with rollout_threads(getattr(actor, "device", "cpu")):
            return run_episodes(actor, env, episodes, seed, progress)
    finally:
        env.close()


def evaluate_policy(
    policy,
    env_config: EnvConfig,
    episodes: int = 30,
    envs: int = 16,
    seed: int = 0,
    device="cpu",
    progress: bool = False,
    batch: int | None = None,
    threads: int | None = None,
    runtime: Runtime = "auto",
) -> EvalResult:
    """Greedy closed-loop returns of `policy` (a ConvCfC) on `env_config`'s game and
    preprocessing.

        from cfcclone import evaluate_policy, load_policy
        loaded = load_policy("checkpoints/breakout_nature.safetensors")
        print(evaluate_policy(loaded.policy, loaded.env_config, episodes=10).line())

    Args:
        episodes: episodes to score, a fixed quota per env.
        envs: vector envs (at most `episodes`).
        seed: the reset seed of the vector env.
        device: cpu, cuda or cuda:N: where the policy and its hidden state live.
        batch: envs the policy steps at once; fewer than `envs` steps them asynchronously,
            the others emulating meanwhile (default: `cfcclone.vector_env.default_batch`, the
            fastest on 2 cores).
        threads: emulator threads per batch of envs (default: the cores shared out).
        runtime: the policy's runtime: torch, onnx (onnxruntime, CPU, the step exported in
            memory), or auto: onnx on the CPU where onnxruntime is installed and the encoder
            is fp32, else torch (see `cfcclone.runtime.make_agent`).
    """
    device, was_training = resolve_device(device), policy.training
    try:
        agent = lambda n: make_agent(policy, n, device, runtime)  # noqa: E731
        return evaluate_actor(agent, env_config, episodes, envs, seed, progress, batch, threads)
    finally:
        policy.train(was_training)


def evaluate_expert(
    expert_spec,
    env_config: EnvConfig,
    episodes: int = 30,
    envs: int = 2,
    seed: int = 0,
    progress: bool = False,
    batch: int | None = None,
) -> EvalResult:
    """Returns of an expert ("planner", "tracker", a checkpoint, a callable) by the same
    protocol, on RAM envs (the experts read the emulator), which step all envs together:
    `batch`, where given, must be `envs`."""
    from cfcclone.experts import make_expert

    _check_episodes(episodes)
    n = min(envs, episodes)
    env = make_vector_env(num_envs=n, batch_size=batch, config=env_config, ram=True)
    try:
        expert = make_expert(expert_spec, env_config.game, num_envs=env.num_envs)
        return run_episodes(expert, env, episodes, seed, progress)
    finally:
        env.close()
