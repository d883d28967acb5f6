"""The one rollout loop: an Actor steps a vector env, and transitions come out.

Every closed loop in cfcclone runs here: evaluation, collection, DAgger, `play` and the
benchmark differ only in what they do with each `Transition`. The episode-start rule is
written once. With same-step autoreset (every env of `cfcclone.vector_env.make_vector_env`),
`episode_start` is True for every env at the first step and then equals the previous step's
`terminated | truncated`: the observation returned with an episode's end already starts the
next one.

An `Actor` is anything with `act(obs, episode_start, info) -> actions`:
`cfcclone.agent.StatefulAgent` (its hidden state reset where `episode_start`), the RAM
experts of `cfcclone.experts` (which read `info["ram"]`), and callables wrapped by
`cfcclone.experts.CallableExpert`.

    for t in rollout(make_vector_env("breakout", 8), agent, seed=0):
        ...  # t.env_ids, t.obs, t.actions, t.executed, t.reward, t.episode_start, t.done

With an asynchronous env (`make_vector_env("breakout", 16, batch_size=8)`) each step holds one
group of 8 envs, named by `t.env_ids`, while the other 8 emulate. Actors key their
per-env memory by `info["env_id"]`.
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
    """Actions for a batch of B envs: obs (B, stack, 84, 84) uint8 frames or (B, stack, d)
    float32 states, episode_start (B,) bool (True where obs is an episode's first: reset
    per-env memory there), and the env's info dict, whose "env_id" (B,) int64 names the envs
    of the batch (all N in order, unless the env steps asynchronously), on RAM envs "ram"
    (B, 128), and on gymnasium envs "state" (B, d), the full state. Returns (B,) int64, or
    (B, a) float32 for a Box action space."""

    def act(self, obs: np.ndarray, episode_start: np.ndarray, info: dict) -> np.ndarray: ...


@dataclass
class Transition:
    """One step of the B envs `env_ids`. Arrays are (B, ...), row k for env env_ids[k]."""

    obs: np.ndarray
    """(B, stack, 84, 84) uint8 or (B, stack, d) float32: what the actor saw."""
    info: dict
    """The per-env arrays of the info that came with `obs` (what the actor was given)."""
    actions: np.ndarray
    """(B,) int64 (or (B, a) float32 for Box actions): what the actor chose."""
    executed: np.ndarray
    """Like `actions`: what the env executed (FIRE where ALE served for the agent)."""
    reward: np.ndarray
    """(B,) float64: the step's unclipped reward."""
    episode_start: np.ndarray
    """(B,) bool: obs is the first observation of an episode."""
    terminated: np.ndarray
    truncated: np.ndarray
    env_ids: np.ndarray
    """(B,) int64: the envs of the rows."""

    @property
    def done(self) -> np.ndarray:
        """(B,) bool: this step ended the env's episode."""
        return self.terminated | self.truncated


def rollout(env, actor: Actor, seed: int | None = None) -> Iterator[Transition]:
    """Reset `env` with `seed`, then step it with `actor` forever, one Transition a step.

    The caller stops by leaving the loop. `env` is a vector env with same-step autoreset; an
    asynchronous one (`make_vector_env(..., batch_size=B)`) returns B envs a step, named by
    `info["env_id"]`, and each Transition then holds the envs whose step results came back.
    Per env, the transitions are exactly those of stepping that env alone.
    """
    obs, info = env.reset(seed=seed)
    n = env.num_envs
    start = np.ones(n, dtype=bool)  # the env's next observation begins an episode
    sent = np.zeros(n, dtype=bool)  # an action went to the env; its result is not back yet
    seen = _PerEnv(n)  # what each env's actor saw when it acted
    while True:
        ids = _env_ids(info, len(obs))
        info["env_id"] = ids
        actions = as_actions(actor.act(obs, start[ids], info))
        seen.store(ids, obs, actions, start[ids], info)
        sent[ids] = True
        obs, reward, terminated, truncated, info = env.step(actions)
        back = _env_ids(info, len(obs))
        result = sent[back]  # else: an env's first observation after reset
        rows = back[result]
        if len(rows):
            executed = executed_actions(info, seen.actions[back])[result]
            done = np.asarray(terminated | truncated, bool)
            yield Transition(
                seen.obs[rows],
                seen.info(rows),
                seen.actions[rows],
                executed,
                np.asarray(reward, np.float64)[result],
                seen.start[rows],
                np.asarray(terminated, bool)[result],
                np.asarray(truncated, bool)[result],
                rows,
            )
            start[rows] = done[result]
        sent[back] = False
        start[back[~result]] = True


def as_actions(actions) -> np.ndarray:
    """An actor's actions as the env takes them: (B,) int64 indices, or (B, d) float32
    vectors for a Box action space."""
    a = np.asarray(actions)
    return a.astype(np.int64) if a.dtype.kind in "iub" else a.astype(np.float32)


def _env_ids(info: dict, batch: int) -> np.ndarray:
    """The envs of a batch: info["env_id"], or all of them in order where the env has none."""
    ids = info.get("env_id")
    return np.arange(batch) if ids is None else np.asarray(ids, dtype=np.int64)


class _PerEnv:
    """The observation, action, episode start and info arrays each env's actor last acted on."""

    def __init__(self, num_envs: int):
        self.n = num_envs
        self.obs = self.actions = self.start = None
        self._info: dict[str, np.ndarray] = {}

    def store(self, ids, obs, actions, start, info) -> None:
        if self.obs is None:
            self.obs = np.empty((self.n, *obs.shape[1:]), obs.dtype)
            self.actions = np.zeros((self.n, *actions.shape[1:]), actions.dtype)
            self.start = np.zeros(self.n, bool)
        self.obs[ids], self.actions[ids], self.start[ids] = obs, actions, start
        for key, value in info.items():
            if (
                isinstance(value, np.ndarray)
                and len(value) == len(ids)
                and not key.startswith(("_", "final_"))
            ):
                if key not in self._info:
                    self._info[key] = np.zeros((self.n, *value.shape[1:]), value.dtype)
                self._info[key][ids] = value

    def info(self, rows) -> dict:
        return {key: value[rows] for key, value in self._info.items()}


def executed_actions(info: dict, played: np.ndarray) -> np.ndarray:
    """The actions ALE executed: info["action"]; where a gymnasium vector env just reset an
    env in the same step, that env's step info is in info["final_info"]."""
    executed = played.copy()
    for source in (info, info.get("final_info") or {}):
        if "action" in source:
            mask = np.asarray(source.get("_action", np.ones(len(played), bool)), bool)
            executed[mask] = np.asarray(source["action"])[mask]
    return executed


def elapsed_times(info: dict, episode_start) -> np.ndarray:
    """(B,) float32: the time each env's last step took, in nominal steps (`info["duration"]`
    of an env with frame-skip jitter); 1 at an episode's start and where the env reports none."""
    start = np.asarray(episode_start, bool).reshape(-1)
    if "duration" not in info:
        return np.ones(len(start), np.float32)
    duration = np.asarray(info["duration"], np.float32).reshape(-1)
    return np.where(start, np.float32(1), duration).astype(np.float32)


class EpisodeTally:
    """Running returns and lengths per env; `update` returns the episodes a step finished."""

    def __init__(self, num_envs: int):
        self.ret = np.zeros(num_envs)
        self.length = np.zeros(num_envs, dtype=np.int64)

    def update(self, t: Transition) -> list[tuple[int, float, int]]:
        """(env, return, length) of each episode that ended at this step."""
        ids = t.env_ids
        self.ret[ids] += t.reward
        self.length[ids] += 1
        ended = [(int(i), float(self.ret[i]), int(self.length[i])) for i in ids[t.done]]
        self.ret[ids[t.done]], self.length[ids[t.done]] = 0.0, 0
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
