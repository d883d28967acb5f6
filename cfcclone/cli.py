"""The `cfcclone` command line. It only parses arguments and calls the library."""

from __future__ import annotations

import argparse
import json
import sys


def _cmd_collect(args) -> int:
    from cfcclone.data import collect

    try:
        manifest = collect(
            args.out, args.game, args.expert, args.frames, args.envs, args.seed, args.resume
        )
    except KeyboardInterrupt:
        print(
            f"\ninterrupted: finished shards are kept in {args.out}; "
            "rerun the same command with --resume to continue",
            file=sys.stderr,
        )
        return 130
    print(
        f"{args.out}: {manifest['steps']} frames, {manifest['episodes_complete']} complete "
        f"episodes in {len(manifest['shards'])} shards"
    )
    return 0


def _cmd_stats(args) -> int:
    from cfcclone.data.dataset import describe

    s = describe(args.dir)
    print(f"{args.dir}: {s['game']}, expert {s['expert']}")
    print(
        f"  episodes {s['episodes']} ({s['complete_episodes']} complete), "
        f"frames {s['steps']}, {s['bytes_per_step']:.0f} bytes/frame on disk"
    )
    total = max(sum(s["actions"].values()), 1)
    for name, n in s["actions"].items():
        print(f"  {name:>10} {n:>9} {100 * n / total:5.1f}%")
    if s["return_mean"] is not None:
        print(
            f"  expert return {s['return_mean']:.1f} ± {s['return_std']:.1f} "
            f"over {s['complete_episodes']} episodes"
        )
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


def _from_args(cls, args, **fixed):
    """A config dataclass from the parsed arguments of the same names, and `fixed` values."""
    from dataclasses import fields

    given = {f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)}
    return cls(**{**given, **fixed})


def _cmd_train(args) -> int:
    from cfcclone.training import TrainConfig, Trainer

    config = _from_args(TrainConfig, args)
    Trainer(config, resume=args.resume).fit()
    print(f"{args.out}: best.safetensors, last.safetensors, metrics.jsonl")
    return 0


def _cmd_eval(args) -> int:
    from cfcclone.envs import EnvConfig
    from cfcclone.evaluation import evaluate_expert, evaluate_policy

    if args.expert:
        result = evaluate_expert(
            args.expert,
            EnvConfig(game=args.game),
            args.episodes,
            envs=args.envs,
            seed=args.seed,
            progress=True,
        )
        label = f"expert {args.expert} on {args.game}"
    elif args.checkpoint:
        from cfcclone.checkpoint import load_policy

        policy = load_policy(args.checkpoint, args.device).use_bf16(args.bf16)
        result = evaluate_policy(
            policy,
            policy.env_config,
            args.episodes,
            args.envs,
            seed=args.seed,
            device=args.device,
            progress=True,
        )
        label = f"{args.checkpoint} on {policy.env_config.game}"
    else:
        raise ValueError("give a checkpoint, or --expert scripted --game GAME")
    print(f"{label}: {result.line()}")
    if args.json:
        from cfcclone.data.format import atomic_write_text

        atomic_write_text(args.json, json.dumps(result.summary(), indent=1))
    return 0


def _cmd_play(args) -> int:
    from cfcclone.checkpoint import load_policy
    from cfcclone.play import has_display, play

    render = args.render
    if render is None and not args.record:
        render = "human" if has_display() else None
        if render is None:
            raise ValueError("no display here: pass --record out.gif (or .mp4) to record")
    returns = play(
        load_policy(args.checkpoint), args.episodes, render, args.record, args.seed, args.max_steps
    )
    print(f"returns {returns}" + (f"; recorded {args.record}" if args.record else ""))
    return 0


def _cmd_plot(args) -> int:
    from cfcclone.plotting import plot_run

    print(plot_run(args.run, args.out))
    return 0


def _cmd_demo(args) -> int:
    from cfcclone.demo import DemoConfig, run_demo

    run_demo(
        DemoConfig(
            out=args.out,
            game=args.game,
            expert=args.expert,
            frames=args.frames,
            epochs=args.epochs,
            eval_episodes=args.eval_episodes,
        )
    )
    return 0


def _cmd_dagger(args) -> int:
    from cfcclone.dagger import DaggerConfig, run_dagger
    from cfcclone.training import TrainConfig

    train = _from_args(TrainConfig, args, data="", out="", init=None)  # set for each round
    config = _from_args(DaggerConfig, args, train=train, eval_episodes=args.round_eval_episodes)
    rows = run_dagger(config, resume=args.resume)
    if rows:
        print(f"{args.out}: student {rows[-1]['student']}, metrics.jsonl")
    return 0


def _cmd_bench(args) -> int:
    from cfcclone.bench import format_markdown, format_table, parse_envs, run_bench
    from cfcclone.data.format import atomic_write_text

    overrides = {
        k: v
        for k, v in vars(args).items()
        if v is not None
        and k in ("device", "frames", "train_steps", "rollout_steps", "rss_frames", "threads")
    }
    if args.envs is not None:
        overrides["envs"] = parse_envs(args.envs)
    results = run_bench(quick=args.quick, reference=args.reference, **overrides)
    print(format_table(results))
    print(json.dumps(results))
    if args.json:
        atomic_write_text(args.json, json.dumps(results, indent=1))
    if args.markdown:
        atomic_write_text(args.markdown, format_markdown(results))
    return 0


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a ConvCfC on a dataset")
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    _add_recipe(p)
    p.add_argument("--init", help="start from this checkpoint's weights (fine-tuning)")
    p.add_argument("--resume", action="store_true", help="continue RUN from its last epoch")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser(
        "dagger", help="recurrent DAgger: the student plays, the expert labels its states"
    )
    p.add_argument("--init", required=True, help="a checkpoint, or a dataset of the expert")
    p.add_argument("--data", help="with a checkpoint --init: expert data to aggregate with")
    p.add_argument("--out", required=True)
    p.add_argument("--game", default="breakout")
    p.add_argument("--expert", default="scripted", help="scripted, tracker or a checkpoint")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--labels-per-round", dest="labels_per_round", type=int, default=20_000)
    p.add_argument("--beta", type=float, default=0.5, help="odds the expert acts in round 1")
    p.add_argument("--beta-decay", dest="beta_decay", type=float, default=0.5)
    p.add_argument("--envs", type=int, default=8, help="envs of each round's rollout")
    p.add_argument(
        "--init-epochs",
        dest="init_epochs",
        type=int,
        default=8,
        help="epochs of the first student, where --init is a dataset",
    )
    p.add_argument(
        "--round-eval-episodes",
        dest="round_eval_episodes",
        type=int,
        default=10,
        help="episodes of each round's student report",
    )
    _add_recipe(p, epochs=2)
    p.add_argument("--resume", action="store_true", help="continue an interrupted DAgger run")
    p.set_defaults(func=_cmd_dagger)


def _add_recipe(p, epochs: int = 10) -> None:
    """The training options that `train` and `dagger` share."""
    p.add_argument("--encoder", default="nature", choices=["tutorial", "nature", "impala"])
    p.add_argument("--units", type=int, default=64)
    p.add_argument("--seq-len", dest="seq_len", type=int, default=32)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--warmup", type=int, default=0, help="steps of linear learning-rate warmup")
    p.add_argument(
        "--schedule",
        default="constant",
        choices=["constant", "cosine"],
        help="the learning rate after the warmup: constant, or cosine decay to 0",
    )
    p.add_argument("--epochs", type=int, default=epochs, help="epochs (per round, for dagger)")
    p.add_argument(
        "--batches-per-epoch",
        dest="batches_per_epoch",
        type=int,
        default=0,
        help="0: one pass over the train split",
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--eval-episodes", dest="eval_episodes", type=int, default=10)
    p.add_argument("--eval-envs", dest="eval_envs", type=int, default=8)
    p.add_argument(
        "--class-weights",
        dest="class_weights",
        default="none",
        choices=["none", "balanced", "sqrt"],
    )
    p.add_argument("--grad-clip", dest="grad_clip", type=float, default=1.0)
    p.add_argument(
        "--horizon",
        default="zero",
        choices=["zero", "burn-in", "stored"],
        help="a window's initial state: zero, burn-in (warm it on the first --burn-in steps) "
        "or stored (truncated BPTT over consecutive windows of whole episodes)",
    )
    p.add_argument("--burn-in", dest="burn_in", type=int, default=8)
    p.add_argument(
        "--amp",
        default="auto",
        choices=["auto", "bf16", "off"],
        help="bf16 autocast of the encoder (auto: where the device is fast at it)",
    )
    p.add_argument("--seed", type=int, default=0)


def _add_eval_play_plot(sub) -> None:
    p = sub.add_parser("eval", help="closed-loop returns of a checkpoint or an expert")
    p.add_argument("checkpoint", nargs="?")
    p.add_argument("--expert", help="score an expert instead: scripted, module:function")
    p.add_argument("--game", default="breakout", help="the game, with --expert")
    p.add_argument("--episodes", type=int, default=30)
    p.add_argument("--envs", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--bf16", action="store_true", help="bf16 encoder (faster, not bit-exact)")
    p.add_argument("--json", help="also write the results to this file")
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("play", help="watch a checkpoint play, or record it")
    p.add_argument("checkpoint")
    p.add_argument("--render", choices=["human"], help="open a window (needs a display)")
    p.add_argument("--record", help="write a .gif or .mp4")
    p.add_argument("--episodes", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-steps", dest="max_steps", type=int, help="cut each episode here")
    p.set_defaults(func=_cmd_play)

    p = sub.add_parser("plot", help="PNG of a run's loss, accuracy and return curves")
    p.add_argument("run")
    p.add_argument("--out", help="default RUN/curves.png")
    p.set_defaults(func=_cmd_plot)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cfcclone", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("collect", help="record expert demonstrations")
    p.add_argument("--game", default="breakout")
    p.add_argument(
        "--expert",
        default="scripted",
        help="'scripted', a checkpoint .safetensors, or module:function",
    )
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

    _add_train(sub)
    _add_eval_play_plot(sub)

    p = sub.add_parser("demo", help="the main job: collect, train, evaluate, record")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--game", default="breakout")
    p.add_argument("--expert", default="tracker", choices=["tracker", "scripted"])
    p.add_argument("--frames", type=int, default=None, help="expert frames to collect")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--eval-episodes", dest="eval_episodes", type=int, default=30)
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("bench", help="throughput, storage and memory beside the NCP tutorial")
    p.add_argument("--device", help="auto (default), cpu, cuda or cuda:N")
    p.add_argument("--frames", type=int, help="frames to collect (default 20000)")
    p.add_argument("--train-steps", dest="train_steps", type=int, help="default 3")
    p.add_argument("--rollout-steps", dest="rollout_steps", type=int, help="default 500")
    p.add_argument("--envs", help="vector env sizes, default 16,64")
    p.add_argument("--rss-frames", dest="rss_frames", type=int, help="default 200000")
    p.add_argument("--threads", type=int, help="torch threads (default 0: torch's default)")
    p.add_argument("--quick", action="store_true", help="tiny sizes: seconds, not figures")
    p.add_argument(
        "--reference",
        help="the tutorial's ncps_tutorial.py (default: shared/reference/ beside the repository)",
    )
    p.add_argument("--json", help="also write the results to this file")
    p.add_argument("--markdown", help="write a markdown section: machine, versions, tables")
    p.set_defaults(func=_cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    from cfcclone.data.collect import CollectionError
    from cfcclone.training import TrainingError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileExistsError, FileNotFoundError, TrainingError, CollectionError) as e:
        print(f"cfcclone {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
