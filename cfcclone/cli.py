"""The `cfcclone` command line. It only parses arguments and calls the library."""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np


def _cmd_collect(args) -> int:
    from cfcclone.data import collect

    try:
        manifest = collect(
            args.out, args.game, args.expert, args.frames, args.envs, args.seed, args.resume
        )
    except KeyboardInterrupt:
        print(f"\ninterrupted: finished shards are kept in {args.out}; "
              "rerun the same command with --resume to continue", file=sys.stderr)
        return 130
    print(f"{args.out}: {manifest['steps']} frames, {manifest['episodes_complete']} complete "
          f"episodes in {len(manifest['shards'])} shards")
    return 0


def _cmd_stats(args) -> int:
    from cfcclone.data.dataset import describe

    s = describe(args.dir)
    print(f"{args.dir}: {s['game']}, expert {s['expert']}")
    print(f"  episodes {s['episodes']} ({s['complete_episodes']} complete), "
          f"frames {s['steps']}, {s['bytes_per_step']:.0f} bytes/frame on disk")
    total = max(sum(s["actions"].values()), 1)
    for name, n in s["actions"].items():
        print(f"  {name:>10} {n:>9} {100 * n / total:5.1f}%")
    if s["return_mean"] is not None:
        print(f"  expert return {s['return_mean']:.1f} ± {s['return_std']:.1f} "
              f"over {s['complete_episodes']} episodes")
    if args.json:
        print(json.dumps(s))
    return 0


def _cmd_import_ncps(args) -> int:
    from cfcclone.data.ncps_format import import_ncps

    print(json.dumps(import_ncps(args.src, args.out, game=args.game)))
    return 0


def _cmd_export_ncps(args) -> int:
    from cfcclone.data.ncps_format import export_ncps

    print(json.dumps(export_ncps(args.dir, args.out, seq_len=args.seq_len)))
    return 0


def _cmd_demo(args) -> int:
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
          " episodes. Training is not built yet; this is a smoke run only.")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cfcclone", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("collect", help="record expert demonstrations")
    p.add_argument("--game", default="breakout")
    p.add_argument("--expert", default="scripted",
                   help="'scripted', a checkpoint .safetensors, or module:function")
    p.add_argument("--frames", type=int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--envs", type=int, default=2, help="worker processes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue an interrupted collection")
    p.set_defaults(func=_cmd_collect)

    p = sub.add_parser("stats", help="describe a dataset")
    p.add_argument("dir")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_stats)

    p = sub.add_parser("import-ncps", help="read the NCP tutorial's npz files")
    p.add_argument("src")
    p.add_argument("--out", required=True)
    p.add_argument("--game", default="breakout")
    p.set_defaults(func=_cmd_import_ncps)

    p = sub.add_parser("export-ncps", help="write the NCP tutorial's npz files")
    p.add_argument("dir")
    p.add_argument("--out", required=True)
    p.add_argument("--seq-len", type=int, default=32)
    p.set_defaults(func=_cmd_export_ncps)

    p = sub.add_parser("demo", help="the main job")
    p.add_argument("--game", default="breakout")
    p.add_argument("--envs", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileExistsError, FileNotFoundError) as e:
        print(f"cfcclone {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
