"""The `cfcclone` command line. It only parses arguments and calls the library.

Each command's options come from the signature or the config dataclass of the library call
behind it, parsed by tyro (`cfcclone.cli.options`), so a default, choice or help text lives in
one place. `cfcclone --help` lists the commands without building any command's options, which
would import their library (and torch).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

SUMMARY = {
    "collect": "record expert demonstrations",
    "import-ncps": "read the NCP tutorial's npz files",
    "export-ncps": "write the NCP tutorial's npz files",
    "import-minari": "read a Minari dataset (needs the 'minari' extra)",
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

RUN = {
    "collect": "data_commands:collect",
    "stats": "data_commands:stats",
    "import-ncps": "data_commands:import_ncps",
    "export-ncps": "data_commands:export_ncps",
    "import-minari": "data_commands:import_minari",
    "export-minari": "data_commands:export_minari",
    "record": "data_commands:record",
    "train": "commands:train",
    "dagger": "commands:dagger",
    "demo": "commands:demo",
    "eval": "commands:evaluate",
    "play": "commands:play",
    "export": "commands:export",
    "plot": "commands:plot",
    "bench": "commands:bench",
}
"""Each command, in --help's order, and its `run(argv) -> exit code` (module:function in
cfcclone.cli), imported when the command runs: building options imports tyro and the
library."""


def top_parser() -> argparse.ArgumentParser:
    """`cfcclone --help`: the commands by name and summary."""
    parser = argparse.ArgumentParser(prog="cfcclone", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in RUN:
        sub.add_parser(name, help=SUMMARY[name])
    return parser


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
    if not argv or argv[0] not in RUN:
        top_parser().parse_args(argv)  # prints the help, or names the unknown command
        return 2
    from cfcclone.cli import commands

    command, rest = argv[0], argv[1:]
    module, function = RUN[command].split(":")
    try:
        run = getattr(importlib.import_module(f"cfcclone.cli.{module}"), function)
        return run(rest)
    except KeyboardInterrupt:
        return commands.interrupted(command)
    except BrokenPipeError:  # `cfcclone stats DIR | head`: the reader left, as with any tool
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except (ValueError, OSError, RuntimeError) as e:
        if not _reported(e):
            raise
        print(f"cfcclone {command}: error: {e}", file=sys.stderr)
        return 2
