"""DAgger's rollout: the beta-mixture of student and expert plays, the expert labels every
state the student visits, and `round_writer` keeps them as the round's shards
(`cfcclone.dagger` runs the rounds)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from cfcclone.agent import StatefulAgent
from cfcclone.data.format import EpisodeWriter
from cfcclone.rollout import EpisodeTally, as_actions, elapsed_times, rollout, rollout_threads


class BetaMixture:
    """An Actor that plays the expert's action with odds beta (per env and step), else the
    student's; both are kept per env, in `student_actions` and `expert_actions` (N,)."""

    def __init__(self, student, expert, beta: float, rng: np.random.Generator, num_envs: int):
        self.student, self.expert, self.beta, self.rng = student, expert, beta, rng
        self.num_envs = num_envs
        self.student_actions = self.expert_actions = None  # (N,) int64, or (N, a) float32

    def act(self, obs, episode_start, info) -> np.ndarray:
        ids = info["env_id"]
        student = as_actions(self.student.act(obs, episode_start, info))
        expert = as_actions(self.expert.act(obs, episode_start, info))
        if self.student_actions is None:
            self.student_actions = np.zeros((self.num_envs, *student.shape[1:]), student.dtype)
            self.expert_actions = np.zeros_like(self.student_actions)
        self.student_actions[ids], self.expert_actions[ids] = student, expert
        played = self.rng.random(len(obs)) < self.beta
        return np.where(played.reshape(-1, *[1] * (student.ndim - 1)), expert, student)


def roll_out(
    policy,
    expert,
    env,
    labels: int,
    beta: float,
    seed: int,
    writer=None,
    device="cpu",
    progress: bool = False,
) -> dict:
    """Play the beta-mixture of expert and student for `labels` steps over the envs of `env`
    (a vector env the expert can read), labelling every visited state with the expert (into
    `writer`, an EpisodeWriter). Returns the agreement of expert and student on the visited
    states (for Box actions, the mean absolute and squared difference of their actions) and
    the returns of the episodes that ended."""
    n = env.num_envs
    rng = np.random.default_rng(seed)
    mix = BetaMixture(StatefulAgent(policy, n, device), expert, beta, rng, n)
    tally, returns = EpisodeTally(n), []
    agree = counted = steps = 0
    abs_diff = sq_diff = 0.0
    with rollout_threads(device), tqdm(total=labels, desc="roll out", disable=not progress) as bar:
        for t in rollout(env, mix, seed):
            student, wanted = mix.student_actions[t.env_ids], mix.expert_actions[t.env_ids]
            if student.ndim == 2:  # Box actions: no FIRE protocol, a distance not a match
                forced, told = np.zeros(len(student), bool), wanted
                abs_diff += float(np.abs(student - wanted).mean(-1).sum())
                sq_diff += float(((student - wanted) ** 2).mean(-1).sum())
            else:  # the FIRE protocol served: the label is that FIRE
                forced = t.executed != t.actions
                told = np.where(forced, t.executed, wanted)
                agree += int(np.sum((student == wanted) & ~forced))
            counted += int(np.sum(~forced))
            if writer is not None:
                elapsed = elapsed_times(t.info, t.episode_start) if "duration" in t.info else None
                writer.add(t.obs, told, t.reward, t.env_ids, executed=t.executed, elapsed=elapsed)
            for i, ret, _ in tally.update(t):
                returns.append(ret)
                if writer is not None:
                    writer.end(i, complete=True)
            steps += len(t.env_ids)
            bar.update(len(t.env_ids))
            if steps >= labels:
                break
    if writer is not None:
        for i in range(n):
            writer.end(i, complete=False)
    return {
        "agreement": agree / max(counted, 1),
        "agreed": agree,
        "counted": counted,
        "abs_diff": abs_diff,
        "sq_diff": sq_diff,
        "labels": steps,
        "rollout_returns": returns,
    }


def round_writer(data: Path, round_: int, num_envs: int, game=None, first=0) -> EpisodeWriter:
    """The writer of round `round_`'s shards, all in the train split; env i is named
    first + i (under torchrun, rank r's envs follow those of the ranks before it)."""
    names = lambda i, k: f"r{round_:02d}-e{first + i:03d}-{k:05d}"  # noqa: E731
    return EpisodeWriter(data, num_envs, names, "train", game)
