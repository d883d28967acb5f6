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

SUMMARY = {
    "collect": "record expert demonstrations",
    "import-ncps": "read the NCP tutorial's npz files",
    "export-ncps": "write the NCP tutorial's npz files",
    "import-minari": "read a Minari dataset of an ALE game (needs the 'minari' extra)",
    "export-minari": "write a dataset as a Minari dataset (needs the 'minari' extra)",
    "record": "play a game yourself; each episode becomes a shard (needs the 'human' extra)",
    "train": "train a ConvCfC on a dataset",
    "dagger": "recurrent DAgger: the student plays, the expert labels its states",
    "demo": "the main job: collect, train, evaluate, record",
    "eval": "closed-loop returns of a checkpoint or an expert",
    "play": "watch a checkpoint play, or record it",
    "plot": "PNG of a run's loss, accuracy and return curves",
    "bench": "throughput, storage and memory beside the NCP tutorial",
    "stats": "describe a dataset",
    "export": "the policy's recurrent step as an ONNX graph (needs the 'export' extra)",
}
"""Each command's one line, for `cfcclone --help` (which builds no command's options)."""


TRAIN_SET_PER_ROUND = ("train.data", "train.out", "train.init", "train.progress")


def _command(sub, name: str, run, source=None, skip=(), positional=()):
    """A subparser whose options come from `source` (a function or a config dataclass)."""
    p = sub.add_parser(name, help=SUMMARY[name], description=SUMMARY[name])
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
    p = _command(sub, "stats", commands.stats)
    p.add_argument("dir", help="a dataset folder")
    p.add_argument("--json", action="store_true", help="also print the figures as JSON")
    p.add_argument("--verify", action="store_true", help="check every checksum, list bad shards")
    p.add_argument("--repair", action="store_true", help="rebuild the manifest from intact shards")
    p.add_argument("--game", help="with --repair, where the manifest is lost: the data's game")
    _command(
        sub,
        "import-ncps",
        commands.import_ncps,
        import_ncps,
        skip=("progress",),
        positional=("src",),
    )
    _command(
        sub,
        "export-ncps",
        commands.export_ncps,
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
        import_minari,
        skip=("progress",),
        positional=("source",),
    )
    _command(
        sub,
        "export-minari",
        commands.export_minari,
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
        TrainConfig,
        skip=("progress",),
    )
    p.add_argument("--resume", action="store_true", help="continue RUN (--out) from its last epoch")
    p = _command(
        sub,
        "dagger",
        commands.dagger,
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
        play,
        skip=("policy", "env_config"),
    )
    p.add_argument("checkpoint", help="a checkpoint (.safetensors) or its .onnx export")
    from cfcclone.export import export_onnx

    _command(sub, "export", commands.export, export_onnx, positional=("checkpoint",))
    _command(
        sub,
        "plot",
        commands.plot,
        plot_run,
        positional=("run",),
    )


def _bench_command(sub) -> None:
    from cfcclone.bench import BenchConfig

    p = _command(
        sub,
        "bench",
        commands.bench,
        BenchConfig,
    )
    p.add_argument("--quick", action="store_true", help="tiny sizes: seconds, not figures")
    p.add_argument(
        "--tutorial", help="the tutorial's ncps_tutorial.py (its rows are skipped without)"
    )
    p.add_argument("--goals", help="a JSON file of goals to check the figures against")
    p.add_argument("--json", help="also write the results to this file")
    p.add_argument("--markdown", help="write a markdown section: machine, versions, tables")


GROUPS = (
    (("collect", "stats", "import-ncps", "export-ncps"), _data_commands),
    (("import-minari", "export-minari"), _minari_commands),
    (("record",), _record_command),
    (("train", "dagger", "demo"), _training_commands),
    (("eval", "play", "export", "plot"), _policy_commands),
    (("bench",), _bench_command),
)
"""The commands, in --help's order, by the function that builds their options."""


def build_parser(commands=None) -> argparse.ArgumentParser:
    """The command line, with the options of `commands` (default: every command); the others
    are listed by name and summary only, since building options imports their library (and
    torch): `cfcclone --help` builds none."""
    parser = argparse.ArgumentParser(prog="cfcclone", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for names, build in GROUPS:
        if commands is None or set(names) & set(commands):
            build(sub)
        else:
            for name in names:
                sub.add_parser(name, help=SUMMARY[name])
    return parser


def _command_of(argv: list[str]) -> str | None:
    """The command named in argv (its first word that is not an option)."""
    return next((a for a in argv if not a.startswith("-")), None)


def _reported(e: BaseException) -> bool:
    """Whether `e` is one of the errors the command line reports on one line."""
    if isinstance(e, (ValueError, FileExistsError, FileNotFoundError)):
        return True
    from cfcclone.data.collect import CollectionError
    from cfcclone.distributed import DistributedError
    from cfcclone.training import TrainingError

    return isinstance(e, (TrainingError, CollectionError, DistributedError))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = _command_of(argv)
    args = build_parser([command] if command else []).parse_args(argv)
    try:
        run, options = args.handler
        return run(args, options)
    except KeyboardInterrupt:
        return commands.interrupted(args.command)
    except BrokenPipeError:  # `cfcclone stats DIR | head`: the reader left, as with any tool
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except (ValueError, OSError, RuntimeError) as e:
        if not _reported(e):
            raise
        print(f"cfcclone {args.command}: error: {e}", file=sys.stderr)
        return 2
