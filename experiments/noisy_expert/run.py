"""How much disagreement can an expert take? Its closed-loop return with a share of its actions
replaced.

At each step, with odds --noise, the expert's action is replaced by one of the two other
actions of NOOP, RIGHT and LEFT (the RAM experts' actions), drawn uniformly. A clone that
agrees with its expert on a share `a` of its own states is wrong on `1 - a` of them; this
prints what an expert scores when it is wrong as often, at random, by the project's evaluation
protocol (sticky actions 0.25, full games, the quota rule of `cfcclone.evaluation.run_episodes`).
`--kind missed` replaces only moves, by NOOP (a press left out); `--kind extra` only NOOPs, by
a move (a press too many); each row reports the share of all steps replaced (`replaced`).

The expert is told the action the env executed (`info["action"]`), as cfcclone's envs report
it: the planners model the paddle the replaced action moved. `--untold` hides it, as the
planners were before they read it: they then judged the paddle by their own last choice.
Beside each row, the share of steps where an untold copy of the expert, shown the same states,
labels differently (`untold_differs`): what reading the executed action changes in the labels.

    python experiments/noisy_expert/run.py --game pong --noise 0 0.05 0.1 0.15 --episodes 10
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


class Untold:
    """An expert shown info without the executed action."""

    def __init__(self, expert):
        self.expert = expert

    def act(self, obs, episode_start, info):
        hidden = {k: v for k, v in info.items() if k not in ("action", "_action")}
        return self.expert.act(obs, episode_start, hidden)


KINDS = ("any", "missed", "extra")


class Noisy:
    """An expert whose action is replaced, with odds `noise`, by another of `actions` (the
    first is the no-move): any action by either other (`kind` any), a move by the no-move
    (missed), or the no-move by either move (extra). `replaced` and `steps` count the steps
    replaced and played. With a `shadow` (a second expert, shown the same states without the
    executed action), `differs` counts the steps where its label is not the expert's."""

    def __init__(self, expert, actions, noise: float, seed: int, shadow=None, kind="any"):
        if not 0 <= noise <= 1:
            raise ValueError(f"expected noise in [0, 1], got {noise}")
        if kind not in KINDS:
            raise ValueError(f"expected kind in {KINDS}, got {kind!r}")
        self.expert, self.actions, self.noise = expert, np.asarray(actions), noise
        self.rng, self.kind = np.random.default_rng(seed), kind
        self.shadow, self.differs, self.replaced, self.steps = shadow, 0, 0, 0

    def act(self, obs, episode_start, info):
        action = self.expert.act(obs, episode_start, info)
        if self.shadow is not None:
            self.differs += int(np.sum(self.shadow.act(obs, episode_start, info) != action))
        self.steps += len(action)
        swap = self.rng.random(len(action)) < self.noise
        # one of the other actions: a draw over len - 1 slots, skipping the expert's own
        other = self.rng.integers(len(self.actions) - 1, size=len(action))
        own = np.argmax(self.actions[None] == action[:, None], axis=1)
        other = self.actions[other + (other >= own)]
        still = action == self.actions[0]
        if self.kind == "missed":
            swap, other = swap & ~still, np.full_like(action, self.actions[0])
        elif self.kind == "extra":
            swap = swap & still
        self.replaced += int(swap.sum())
        return np.where(swap, other, action)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--game", default="pong")
    ap.add_argument("--expert", default="planner", choices=["planner", "tracker"])
    ap.add_argument("--noise", type=float, nargs="+", default=[0.0, 0.05, 0.1, 0.15])
    ap.add_argument("--episodes", type=int, default=10)
    ap.add_argument("--envs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--untold", action="store_true", help="hide the executed action")
    ap.add_argument("--kind", default="any", choices=KINDS, help="the actions replaced")
    ap.add_argument("--json", help="write the rows here")
    args = ap.parse_args(argv)
    config = EnvConfig(game=args.game)
    rows = []
    for noise in args.noise:
        env = make_vector_env(num_envs=args.envs, config=config, ram=True)
        try:
            expert, shadow = (make_expert(args.expert, args.game, env.num_envs) for _ in "ab")
            if args.untold:
                actor = Noisy(Untold(expert), MOVES, noise, args.seed, kind=args.kind)
            else:
                untold = Untold(shadow)
                actor = Noisy(expert, MOVES, noise, args.seed, shadow=untold, kind=args.kind)
            result = run_episodes(actor, env, args.episodes, args.seed)
        finally:
            env.close()
        replaced = actor.replaced / max(actor.steps, 1)
        line = f"{args.kind} noise {noise:.2f}: {result.line()}, {replaced:.1%} of steps replaced"
        row = {"kind": args.kind, "noise": noise, "replaced": replaced, **result.summary()}
        if actor.shadow is not None:
            row["untold_differs"] = actor.differs / max(actor.steps, 1)
            line += f", untold labels differ on {row['untold_differs']:.1%} of the steps"
        rows.append(row)
        print(line, flush=True)
    if args.json:
        atomic_write_text(args.json, json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
