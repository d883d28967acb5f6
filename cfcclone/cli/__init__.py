"""The `cfcclone` command line. It only parses arguments and calls the library.

Every option is generated (`cfcclone.cli.options`) from the signature or the config dataclass
of the library call behind the subcommand, so its default, choices and help live in one place.
"""

from __future__ import annotations

import argparse
import os
import sys

from cfcclone.cli import commands
from cfcclone.cli.options import add_options, params

TRAIN_SET_PER_ROUND = ("train.data", "train.out", "train.init", "train.progress")


def _command(sub, name: str, run, help: str, source=None, skip=(), positional=()):
    """A subparser whose options come from `source` (a function or a config dataclass)."""
    p = sub.add_parser(name, help=help, description=help)
    options = [] if source is None else params(source, skip=skip)
    add_options(p, options, positional)
    p.set_defaults(handler=(run, options))  # no option is called handler
    return p


def _data_commands(sub) -> None:
    from cfcclone.data.collect import collect
    from cfcclone.data.ncps_format import export_ncps, import_ncps
    from cfcclone.envs import EnvConfig

    p = _command(
        sub,
        "collect",
        commands.collect,
        "record expert demonstrations",
        collect,
        skip=("progress",),
    )
    # the preprocessing, EnvConfig's fields: the manifest stores it, and every checkpoint
    # trained on the data is evaluated with it
    about = "the preprocessing, stored with the data; checkpoints trained on it replay it"
    env = params(EnvConfig, skip=("game",), group=("env options", about))
    add_options(p, env)
    run, options = p.get_default("handler")
    p.set_defaults(handler=(run, options + env))
    p = _command(sub, "stats", commands.stats, "describe a dataset")
    p.add_argument("dir", help="a dataset folder")
    p.add_argument("--json", action="store_true", help="also print the figures as JSON")
    p.add_argument("--verify", action="store_true", help="check every checksum, list bad shards")
    p.add_argument("--repair", action="store_true", help="rebuild the manifest from intact shards")
    p.add_argument("--game", help="with --repair, where the manifest is lost: the data's game")
    _command(
        sub,
        "import-ncps",
        commands.import_ncps,
        "read the NCP tutorial's npz files",
        import_ncps,
        skip=("progress",),
        positional=("src",),
    )
    _command(
        sub,
        "export-ncps",
        commands.export_ncps,
        "write the NCP tutorial's npz files",
        export_ncps,
        skip=("progress",),
        positional=("root",),
    )


def _minari_commands(sub) -> None:
    from cfcclone.data.minari_format import export_minari, import_minari

    _command(
        sub,
        "import-minari",
        commands.import_minari,
        "read a Minari dataset of an ALE game (needs the 'minari' extra)",
        import_minari,
        skip=("progress",),
        positional=("source",),
    )
    _command(
        sub,
        "export-minari",
        commands.export_minari,
        "write a dataset as a Minari dataset (needs the 'minari' extra)",
        export_minari,
        skip=("progress",),
        positional=("root",),
    )


def _record_command(sub) -> None:
    from cfcclone.record import record

    _command(
        sub,
        "record",
        commands.record,
        "play a game yourself; each episode becomes a shard (needs the 'human' extra)",
        record,
        skip=("before_step",),
    )


def _training_commands(sub) -> None:
    from cfcclone.dagger import DaggerConfig
    from cfcclone.demo import PRESETS, DemoConfig
    from cfcclone.training import TrainConfig

    p = _command(
        sub,
        "train",
        commands.train,
        "train a ConvCfC on a dataset",
        TrainConfig,
        skip=("progress",),
    )
    p.add_argument("--resume", action="store_true", help="continue RUN (--out) from its last epoch")
    p = _command(
        sub,
        "dagger",
        commands.dagger,
        "recurrent DAgger: the student plays, the expert labels its states",
        DaggerConfig,
        skip=TRAIN_SET_PER_ROUND,
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted DAgger run (its stored options; --rounds may grow)",
    )
    for action in p._actions:  # a resumed run knows its init
        if action.dest == "init":
            action.required = False
    p = _command(
        sub,
        "demo",
        commands.demo,
        "the main job: collect, train, evaluate, record",
        DemoConfig,
        skip=TRAIN_SET_PER_ROUND,
    )
    p.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default="breakout",
        help="the job the options change: breakout (the default) or hopper (MuJoCo Hopper-v5)",
    )


def _policy_commands(sub) -> None:
    from cfcclone.cli.commands import EVAL_ENV_CHANGES
    from cfcclone.envs import EnvConfig
    from cfcclone.evaluation import evaluate_policy
    from cfcclone.play import play
    from cfcclone.plotting import plot_run

    p = _command(
        sub,
        "eval",
        commands.evaluate,
        "closed-loop returns of a checkpoint or an expert",
        evaluate_policy,
        skip=("policy", "env_config", "progress"),
    )
    p.add_argument("checkpoint", nargs="?", help="a checkpoint (.safetensors) or its .onnx export")
    p.add_argument("--expert", help="score an expert instead: planner, tracker, module:function")
    # the env: the checkpoint's, where one is given; these change it
    add_options(p, [o for o in params(EnvConfig) if o.name in ("game", *EVAL_ENV_CHANGES)])
    p.add_argument("--bf16", action="store_true", help="bf16 encoder (faster, not bit-exact)")
    p.add_argument("--json", help="also write the results to this file")
    p = _command(
        sub,
        "play",
        commands.play,
        "watch a checkpoint play, or record it",
        play,
        skip=("policy", "env_config"),
    )
    p.add_argument("checkpoint", help="a checkpoint (.safetensors) or its .onnx export")
    from cfcclone.export import export_onnx

    help_ = "the policy's recurrent step as an ONNX graph (needs the 'export' extra)"
    _command(sub, "export", commands.export, help_, export_onnx, positional=("checkpoint",))
    _command(
        sub,
        "plot",
        commands.plot,
        "PNG of a run's loss, accuracy and return curves",
        plot_run,
        positional=("run",),
    )


def _bench_command(sub) -> None:
    from cfcclone.bench import BenchConfig

    p = _command(
        sub,
        "bench",
        commands.bench,
        "throughput, storage and memory beside the NCP tutorial",
        BenchConfig,
    )
    p.add_argument("--quick", action="store_true", help="tiny sizes: seconds, not figures")
    p.add_argument(
        "--tutorial", help="the tutorial's ncps_tutorial.py (its rows are skipped without)"
    )
    p.add_argument("--goals", help="a JSON file of goals to check the figures against")
    p.add_argument("--json", help="also write the results to this file")
    p.add_argument("--markdown", help="write a markdown section: machine, versions, tables")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cfcclone", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _data_commands(sub)
    _minari_commands(sub)
    _record_command(sub)
    _training_commands(sub)
    _policy_commands(sub)
    _bench_command(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from cfcclone.data.collect import CollectionError
    from cfcclone.distributed import DistributedError
    from cfcclone.training import TrainingError

    args = build_parser().parse_args(argv)
    try:
        run, options = args.handler
        return run(args, options)
    except KeyboardInterrupt:
        return commands.interrupted(args.command)
    except BrokenPipeError:  # `cfcclone stats DIR | head`: the reader left, as with any tool
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except (
        ValueError,
        FileExistsError,
        FileNotFoundError,
        TrainingError,
        CollectionError,
        DistributedError,
    ) as e:
        print(f"cfcclone {args.command}: error: {e}", file=sys.stderr)
        return 2
