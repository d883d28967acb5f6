"""The one rollout loop: an Actor steps a vector env, and transitions come out.

Every closed loop in cfcclone runs here: evaluation, collection, DAgger, `play` and the
benchmark differ only in what they do with each `Transition`. The episode-start rule is
written once. With same-step autoreset (every env of `cfcclone.envs.make_vector_env`),
`episode_start` is True for every env at the first step and then equals the previous step's
`terminated | truncated`: the observation returned with an episode's end already starts the
next one.

An `Actor` is anything with `act(obs, episode_start, info) -> actions`:
`cfcclone.agent.StatefulAgent` (its hidden state reset where `episode_start`), the RAM
experts of `cfcclone.experts` (which read `info["ram"]`), and callables wrapped by
`cfcclone.experts.CallableExpert`.

    for t in rollout(make_vector_env("breakout", 8), agent, seed=0):
        ...  # t.obs, t.actions, t.executed, t.reward, t.episode_start, t.done
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import torch


@runtime_checkable
class Actor(Protocol):
    """Actions for N envs: obs (N, stack, 84, 84) uint8, episode_start (N,) bool (True where
    obs is an episode's first: reset per-env memory there), and the env's info dict (with
    "ram" (N, 128) on RAM envs). Returns (N,) int64."""

    def act(self, obs: np.ndarray, episode_start: np.ndarray, info: dict) -> np.ndarray: ...


@dataclass
class Transition:
    """One vector step. Arrays are (N, ...) over the envs."""

    obs: np.ndarray
    """(N, stack, 84, 84) uint8: what the actor saw."""
    info: dict
    """The info that came with `obs` (what the actor was given)."""
    actions: np.ndarray
    """(N,) int64: what the actor chose."""
    executed: np.ndarray
    """(N,) int64: what ALE executed (FIRE where the env served for the agent)."""
    reward: np.ndarray
    """(N,) float64: the step's unclipped reward."""
    episode_start: np.ndarray
    """(N,) bool: obs is the first observation of an episode."""
    terminated: np.ndarray
    truncated: np.ndarray

    @property
    def done(self) -> np.ndarray:
        """(N,) bool: this step ended the env's episode."""
        return self.terminated | self.truncated


def rollout(env, actor: Actor, seed: int | None = None) -> Iterator[Transition]:
    """Reset `env` with `seed`, then step it with `actor` forever, one Transition a step.

    The caller stops by leaving the loop. `env` is a vector env with same-step autoreset.
    """
    obs, info = env.reset(seed=seed)
    start = np.ones(env.num_envs, dtype=bool)
    while True:
        actions = np.asarray(actor.act(obs, start, info), dtype=np.int64)
        next_obs, reward, terminated, truncated, next_info = env.step(actions)
        yield Transition(
            obs,
            info,
            actions,
            executed_actions(next_info, actions),
            np.asarray(reward, np.float64),
            start,
            np.asarray(terminated, bool),
            np.asarray(truncated, bool),
        )
        obs, info, start = next_obs, next_info, np.asarray(terminated | truncated, bool)


def executed_actions(info: dict, played: np.ndarray) -> np.ndarray:
    """The actions ALE executed: info["action"]; where a gymnasium vector env just reset an
    env in the same step, that env's step info is in info["final_info"]."""
    executed = played.copy()
    for source in (info, info.get("final_info") or {}):
        if "action" in source:
            mask = np.asarray(source.get("_action", np.ones(len(played), bool)), bool)
            executed[mask] = np.asarray(source["action"])[mask]
    return executed


class EpisodeTally:
    """Running returns and lengths per env; `update` returns the episodes a step finished."""

    def __init__(self, num_envs: int):
        self.ret = np.zeros(num_envs)
        self.length = np.zeros(num_envs, dtype=np.int64)

    def update(self, t: Transition) -> list[tuple[int, float, int]]:
        """(env, return, length) of each episode that ended at this step."""
        self.ret += t.reward
        self.length += 1
        ended = [(int(i), float(self.ret[i]), int(self.length[i])) for i in np.flatnonzero(t.done)]
        self.ret[t.done], self.length[t.done] = 0.0, 0
        return ended


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
