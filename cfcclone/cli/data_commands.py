"""The data commands: collect, stats, the tutorial's and Minari's formats, record.

Each is `name(argv) -> exit code`: its options (`cfcclone.cli.options`), then the library call.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from tyro.conf import Positional

from cfcclone.cli.options import Options, call, parse
from cfcclone.data.format import DatasetError


def collect(argv) -> int:
    from cfcclone import distributed
    from cfcclone.data import collect
    from cfcclone.envs import EnvConfig

    # the preprocessing, EnvConfig's fields: the manifest stores it, and every checkpoint
    # trained on the data is evaluated with it
    env = Options(EnvConfig, name="env", skip=("game",), spread=True)
    values = parse("collect", [Options(collect, skip=("progress",)), env], argv)
    env = values.pop("env")
    manifest = collect(**values, **env)
    if distributed.world().main:  # under torchrun, rank 0 reports
        print(
            f"{values['out']}: {manifest.steps} frames, {manifest.episodes_complete} complete "
            f"episodes in {len(manifest.shards)} shards"
        )
    distributed.close()
    return 0


@dataclass(frozen=True)
class StatsOptions:
    """stats's own options."""

    dir: Positional[str]
    """A dataset folder."""
    json: bool = False
    """Also print the figures as JSON."""
    verify: bool = False
    """Check every checksum, list bad shards."""
    repair: bool = False
    """Rebuild the manifest from intact shards."""
    game: str | None = None
    """With --repair, where the manifest is lost: the data's game."""


def stats(argv) -> int:
    from cfcclone.data.dataset import describe
    from cfcclone.data.manifest import Manifest, check_shards, repair

    args = parse("stats", [Options(StatsOptions, name="stats")], argv)["stats"]
    if args.repair:
        manifest, dropped = repair(args.dir, args.game)
        print(f"{args.dir}: manifest rebuilt, {len(manifest.shards)} intact shards")
        for name, why in dropped.items():
            print(f"  dropped {name}: {why}")
    elif args.verify:
        good, bad = check_shards(args.dir, Manifest.read(args.dir))
        print(f"{args.dir}: {len(good)} shards intact, {len(bad)} bad")
        for name, why in bad.items():
            print(f"  bad {name}: {why}")
        if bad:
            raise DatasetError(
                f"{args.dir}: {len(bad)} bad shards; cfcclone stats --repair drops them"
            )
    s = describe(args.dir)
    print(f"{args.dir}: {s['env']}, expert {s['expert']}")
    print(
        f"  episodes {s['episodes']} ({s['complete_episodes']} complete), "
        f"frames {s['steps']}, {s['bytes_per_step']:.0f} bytes/frame on disk"
    )
    print(f"  actions {s['action_space']}")
    for name, n in s["actions"].items():
        if isinstance(n, dict):  # a Box dimension
            print(f"  {name:>10} mean {n['mean']:+.3f} std {n['std']:.3f} "
                  f"in [{n['min']:+.3f}, {n['max']:+.3f}]")  # fmt: skip
        else:
            total = max(sum(s["actions"].values()), 1)
            print(f"  {name:>10} {n:>9} {100 * n / total:5.1f}%")
    if s["return_mean"] is not None:
        print(
            f"  expert return {s['return_mean']:.1f} ± {s['return_std']:.1f} "
            f"over {s['complete_episodes']} episodes"
        )
    if args.json:
        print(json.dumps(s))
    return 0


def import_ncps(argv) -> int:
    from cfcclone.data.ncps_format import import_ncps

    manifest = call("import-ncps", import_ncps, argv, positional=("src",))
    print(json.dumps(manifest.to_dict()))
    return 0


def export_ncps(argv) -> int:
    from cfcclone.data.ncps_format import export_ncps

    print(json.dumps(call("export-ncps", export_ncps, argv, positional=("root",))))
    return 0


def import_minari(argv) -> int:
    from cfcclone.data.minari_format import import_minari

    values = parse(
        "import-minari", [Options(import_minari, skip=("progress",), positional=("source",))], argv
    )
    manifest = import_minari(**values)
    print(
        f"{values['out']}: {manifest.steps} steps, {manifest.episodes_complete} complete "
        f"episodes of {manifest.game}; evaluate its clones on {manifest.env.describe()}"
    )
    return 0


def export_minari(argv) -> int:
    from cfcclone.data.minari_format import export_minari

    values = parse(
        "export-minari", [Options(export_minari, skip=("progress",), positional=("root",))], argv
    )
    path = export_minari(**values)
    print(f"{path}: Minari dataset {values['dataset_id']} (minari.load_dataset reads it)")
    return 0


def record(argv) -> int:
    from cfcclone.record import record

    values = parse("record", [Options(record, skip=("before_step",))], argv)
    manifest = record(**values)
    print(
        f"{values['out']}: {manifest.steps} steps, {manifest.episodes_complete} finished "
        f"episodes in {len(manifest.shards)} shards"
    )
    return 0
