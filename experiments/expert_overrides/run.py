"""Which of a clone's disagreements cost it the game? Its closed-loop return when the expert
overrides one kind of them.

The clone plays greedily, and the expert labels every state it visits (told the executed action,
as in DAgger). Each step where the two disagree is one of three kinds, by the paddle moves
of their actions (RIGHT.. +1, LEFT.. -1, anything else 0):
- `missed`: the expert moves, the clone does not;
- `extra`: the clone moves, the expert does not;
- `wrong`: they move opposite ways.

`--fix KIND` plays the expert's action on the steps of that kind (and the clone's on the rest);
`none` is the clone as it is, `all` the expert everywhere (the clone's state still runs).
A kind whose fixing brings the return to the expert's is where the clone loses its games.
`--noop-bias B` adds B to the no-move logits before the argmax (negative: the clone presses
more), the cheapest test of a clone that presses too little or too much. Each row reports the
return and the share of the clone's steps of each kind, by the evaluation protocol (sticky
actions 0.25, full games, the quota rule of `cfcclone.evaluation.run_episodes`).

    python experiments/expert_overrides/run.py runs/pong/dagger/round20/best.safetensors \
        --fix none missed extra wrong --episodes 10
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from cfcclone.agent import StatefulAgent
from cfcclone.atomic import atomic_write_text
from cfcclone.checkpoint import load_policy
from cfcclone.evaluation import run_episodes
from cfcclone.experts import make_expert
from cfcclone.rollout import rollout_threads
from cfcclone.vector_env import make_vector_env

KINDS = ("missed", "extra", "wrong")
FIXES = ("none", *KINDS, "all")


def moves(meanings) -> np.ndarray:
    """The paddle move (+1, -1, 0) of each action, from its name."""
    return np.array([1 if "RIGHT" in m else -1 if "LEFT" in m else 0 for m in meanings])


def kinds(student_move: np.ndarray, expert_move: np.ndarray) -> dict[str, np.ndarray]:
    """(B,) bool masks of the three kinds of disagreement."""
    return {
        "missed": (student_move == 0) & (expert_move != 0),
        "extra": (student_move != 0) & (expert_move == 0),
        "wrong": (student_move != 0) & (expert_move != 0) & (student_move != expert_move),
    }


class Overridden:
    """The clone, with the expert's action played on the steps of kind `fix`; counts every
    kind over the steps played in `counts` and `steps`."""

    def __init__(self, agent: StatefulAgent, expert, meanings, fix: str, noop_bias: float = 0.0):
        if fix not in FIXES:
            raise ValueError(f"expected fix in {FIXES}, got {fix!r}")
        self.agent, self.expert, self.fix = agent, expert, fix
        self.move = moves(meanings)
        self.bias = torch.as_tensor(np.where(self.move == 0, noop_bias, 0.0), dtype=torch.float32)
        self.counts, self.steps = dict.fromkeys(KINDS, 0), 0

    def act(self, obs, episode_start, info):
        logits = self.agent.step(obs, episode_start, info.get("env_id"))
        student = (logits.float().cpu() + self.bias).argmax(-1).numpy().astype(np.int64)
        expert = np.asarray(self.expert.act(obs, episode_start, info), np.int64)
        masks = kinds(self.move[student], self.move[expert])
        for kind, mask in masks.items():
            self.counts[kind] += int(mask.sum())
        self.steps += len(student)
        if self.fix == "none":
            return student
        use = np.ones(len(student), bool) if self.fix == "all" else masks[self.fix]
        return np.where(use, expert, student)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--expert", default="planner")
    ap.add_argument("--fix", nargs="+", default=list(FIXES), choices=FIXES)
    ap.add_argument("--noop-bias", type=float, nargs="+", default=[0.0])
    ap.add_argument("--episodes", type=int, default=10)
    ap.add_argument("--envs", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="write the rows here")
    args = ap.parse_args(argv)
    loaded = load_policy(args.checkpoint)
    config = loaded.env_config
    rows = []
    for bias in args.noop_bias:
        for fix in args.fix:
            env = make_vector_env(num_envs=min(args.envs, args.episodes), config=config, ram=True)
            try:
                agent = StatefulAgent.for_env(loaded.policy, env)
                expert = make_expert(args.expert, config.game, env.num_envs)
                actor = Overridden(agent, expert, env.action_meanings, fix, bias)
                with rollout_threads("cpu"):
                    result = run_episodes(actor, env, args.episodes, args.seed)
            finally:
                env.close()
            shares = {k: v / max(actor.steps, 1) for k, v in actor.counts.items()}
            row = {"fix": fix, "noop_bias": bias, **result.summary(), **shares}
            rows.append(row)
            kinds_line = ", ".join(f"{k} {v:.1%}" for k, v in shares.items())
            print(f"fix {fix}, noop bias {bias:+.2f}: {result.line()}; {kinds_line}", flush=True)
    if args.json:
        atomic_write_text(args.json, json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
