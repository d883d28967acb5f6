"""How much disagreement can an expert take? Its closed-loop return with a share of its actions
replaced.

At each step, with odds --noise, the expert's action is replaced by one of the two other
actions of NOOP, RIGHT and LEFT (the RAM experts' actions), drawn uniformly. A clone that
agrees with its expert on a share `a` of its own states is wrong on `1 - a` of them; this
prints what an expert scores when it is wrong as often, at random, by the project's evaluation
protocol (sticky actions 0.25, full games, the quota rule of `cfcclone.evaluation.run_episodes`).

    python scripts/noisy_expert.py --game pong --noise 0 0.05 0.1 0.15 --episodes 10
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from cfcclone.atomic import atomic_write_text
from cfcclone.envs import EnvConfig
from cfcclone.evaluation import run_episodes
from cfcclone.experts import make_expert
from cfcclone.vector_env import make_vector_env

MOVES = (0, 2, 3)  # NOOP, RIGHT, LEFT: every action of the RAM experts, in Breakout and Pong


class Noisy:
    """An expert whose action is replaced, with odds `noise`, by another of `actions`."""

    def __init__(self, expert, actions, noise: float, seed: int):
        if not 0 <= noise <= 1:
            raise ValueError(f"expected noise in [0, 1], got {noise}")
        self.expert, self.actions, self.noise = expert, np.asarray(actions), noise
        self.rng = np.random.default_rng(seed)

    def act(self, obs, episode_start, info):
        action = self.expert.act(obs, episode_start, info)
        swap = self.rng.random(len(action)) < self.noise
        # one of the other actions: a draw over len - 1 slots, skipping the expert's own
        other = self.rng.integers(len(self.actions) - 1, size=len(action))
        own = np.argmax(self.actions[None] == action[:, None], axis=1)
        other = self.actions[other + (other >= own)]
        return np.where(swap, other, action)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--game", default="pong")
    ap.add_argument("--expert", default="planner", choices=["planner", "tracker"])
    ap.add_argument("--noise", type=float, nargs="+", default=[0.0, 0.05, 0.1, 0.15])
    ap.add_argument("--episodes", type=int, default=10)
    ap.add_argument("--envs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="write the rows here")
    args = ap.parse_args(argv)
    config = EnvConfig(game=args.game)
    rows = []
    for noise in args.noise:
        env = make_vector_env(num_envs=args.envs, config=config, ram=True)
        try:
            expert = make_expert(args.expert, args.game, num_envs=env.num_envs)
            actor = Noisy(expert, MOVES, noise, args.seed)
            result = run_episodes(actor, env, args.episodes, args.seed)
        finally:
            env.close()
        rows.append({"noise": noise, **result.summary()})
        print(f"noise {noise:.2f}: {result.line()}", flush=True)
    if args.json:
        atomic_write_text(args.json, json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
