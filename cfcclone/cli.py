"""The `cfcclone` command line. It only parses arguments and calls the library."""

from __future__ import annotations

import argparse
import sys

import numpy as np


def _cmd_demo(args: argparse.Namespace) -> int:
    from cfcclone import ConvCfC, PolicyConfig, StatefulAgent, make_vector_env

    env = make_vector_env(args.game, args.envs)
    policy = ConvCfC(PolicyConfig(n_actions=len(env.action_meanings), encoder="nature"))
    agent = StatefulAgent.for_env(policy, env)
    obs, _ = env.reset(seed=args.seed)
    start = np.ones(env.num_envs, dtype=bool)
    returns, running = [], np.zeros(env.num_envs)
    while len(returns) < args.envs:
        obs, reward, term, trunc, _ = env.step(agent.act(obs, start))
        running += reward
        start = term | trunc
        returns += running[start].tolist()
        running[start] = 0
    print(f"UNTRAINED ConvCfC on {args.game}: return {np.mean(returns):.1f} over {len(returns)}"
          " episodes. Collection and training are not built yet; this is a smoke run only.")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cfcclone", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="the main job")
    demo.add_argument("--game", default="breakout")
    demo.add_argument("--envs", type=int, default=8)
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
