"""Closed-loop evaluation: exactly N episodes over vectorized envs, without favouring short ones.

Env i plays a fixed quota of episodes (N // envs, one more for the first N % envs) and only
its first `quota` episodes count. Stopping at the first N episodes to finish would over-sample
short, low-scoring ones. Policies run on `make_vector_env` (C++ envs) through a StatefulAgent
whose hidden state stays on the device and is reset per env at each episode start. RAM experts
run on gymnasium's AsyncVectorEnv over `make_env` (the C++ vector env does not expose RAM),
with the same preprocessing and the same same-step autoreset.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import asdict, dataclass

import gymnasium as gym
import numpy as np
import torch
from tqdm.auto import tqdm

from cfcclone.agent import StatefulAgent, check_policy_matches_env
from cfcclone.envs import AtariEnv, EnvConfig, make_vector_env
from cfcclone.experts import AgentExpert


@dataclass
class EvalResult:
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


@contextmanager
def rollout_threads(device):
    """One torch thread while rolling out on the CPU: the env's C++ threads need the cores, and
    torch's spinning OpenMP threads fighting them made 2-env rollouts 40x slower here."""
    if torch.device(device).type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def make_ram_vector_env(config: EnvConfig, num_envs: int) -> gym.vector.VectorEnv:
    """`num_envs` processes of `make_env`, whose info carries "ram" (N, 128)."""
    env = gym.vector.AsyncVectorEnv(
        [lambda: AtariEnv(config) for _ in range(num_envs)],
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
    )
    env.action_meanings = AtariEnv(config).action_meanings
    return env


def run_episodes(actor, env, episodes: int, seed: int = 0, progress: bool = False) -> EvalResult:
    """Play exactly `episodes` episodes with the quota rule; `actor.act(obs, info, start)`."""
    import time

    if episodes < 1:
        raise ValueError(f"expected episodes >= 1, got {episodes}")
    n = env.num_envs
    quota = np.array([episodes // n + (i < episodes % n) for i in range(n)])
    returns: list[list[float]] = [[] for _ in range(n)]
    lengths: list[list[int]] = [[] for _ in range(n)]
    running, length = np.zeros(n), np.zeros(n, dtype=np.int64)
    obs, info = env.reset(seed=seed)
    start = np.ones(n, dtype=bool)
    steps, t0 = 0, time.perf_counter()
    with tqdm(total=episodes, desc="eval", unit="ep", disable=not progress) as bar:
        while any(len(returns[i]) < quota[i] for i in range(n)):
            obs, reward, terminated, truncated, info = env.step(actor.act(obs, info, start))
            running += reward
            length += 1
            steps += n
            start = terminated | truncated
            for i in np.flatnonzero(start):
                if len(returns[i]) < quota[i]:
                    returns[i].append(float(running[i]))
                    lengths[i].append(int(length[i]))
                    bar.update(1)
            running[start], length[start] = 0.0, 0
    flat = lambda xs: [x for per_env in xs for x in per_env]  # noqa: E731
    return EvalResult(flat(returns), flat(lengths), steps, time.perf_counter() - t0)


def evaluate_policy(
    policy,
    env_config: EnvConfig,
    episodes: int = 30,
    envs: int = 16,
    seed: int = 0,
    device="cpu",
    progress: bool = False,
) -> EvalResult:
    """Greedy closed-loop returns of `policy` on `env_config`'s game and preprocessing."""
    if episodes < 1:
        raise ValueError(f"expected episodes >= 1, got {episodes}")
    env = make_vector_env(num_envs=min(envs, episodes), **env_config.to_dict())
    check_policy_matches_env(policy, env.action_meanings)
    was_training = policy.training
    agent = StatefulAgent(policy, env.num_envs, device)
    try:
        with rollout_threads(device):
            return run_episodes(AgentExpert(agent), env, episodes, seed, progress)
    finally:
        env.close()
        policy.train(was_training)


def evaluate_expert(
    expert_spec,
    env_config: EnvConfig,
    episodes: int = 30,
    envs: int = 2,
    seed: int = 0,
    progress: bool = False,
) -> EvalResult:
    """Returns of an expert ("scripted", a checkpoint, a callable) by the same protocol."""
    from cfcclone.experts import make_expert

    if episodes < 1:
        raise ValueError(f"expected episodes >= 1, got {episodes}")
    env = make_ram_vector_env(env_config, min(envs, episodes))
    try:
        expert = make_expert(expert_spec, env_config.game, num_envs=env.num_envs)
        return run_episodes(expert, env, episodes, seed, progress)
    finally:
        env.close()
