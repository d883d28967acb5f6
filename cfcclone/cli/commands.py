"""What each subcommand does with its parsed options: call the library, print the result."""

from __future__ import annotations

import dataclasses
import inspect
import json
import sys
from functools import partial

from cfcclone.atomic import atomic_write_text, check_file_target
from cfcclone.cli.options import config_from_args, given
from cfcclone.config import replace_path
from cfcclone.data.format import DatasetError


def collect(args, options) -> int:
    from cfcclone import distributed
    from cfcclone.data import collect

    manifest = collect(**given(args, options))
    if distributed.world().main:  # under torchrun, rank 0 reports
        print(
            f"{args.out}: {manifest.steps} frames, {manifest.episodes_complete} complete "
            f"episodes in {len(manifest.shards)} shards"
        )
    distributed.close()
    return 0


def stats(args, options) -> int:
    from cfcclone.data.dataset import describe
    from cfcclone.data.manifest import Manifest, check_shards, repair

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


def import_ncps(args, options) -> int:
    from cfcclone.data.ncps_format import import_ncps

    print(json.dumps(import_ncps(**given(args, options)).to_dict()))
    return 0


def export_ncps(args, options) -> int:
    from cfcclone.data.ncps_format import export_ncps

    print(json.dumps(export_ncps(**given(args, options))))
    return 0


def import_minari(args, options) -> int:
    from cfcclone.data.minari_format import import_minari

    manifest = import_minari(**given(args, options))
    print(
        f"{args.out}: {manifest.steps} steps, {manifest.episodes_complete} complete episodes of "
        f"{manifest.game}; evaluate its clones on {manifest.env.describe()}"
    )
    return 0


def export_minari(args, options) -> int:
    from cfcclone.data.minari_format import export_minari

    path = export_minari(**given(args, options))
    print(f"{path}: Minari dataset {args.dataset_id} (minari.load_dataset reads it)")
    return 0


def record(args, options) -> int:
    from cfcclone.record import record

    manifest = record(**given(args, options))
    print(
        f"{args.out}: {manifest.steps} steps, {manifest.episodes_complete} finished episodes "
        f"in {len(manifest.shards)} shards"
    )
    return 0


def train_config(args, options):
    """A fresh run from the defaults; with --init, from the checkpoint's stored recipe; with
    --resume, the run's stored config. The options typed are laid over it."""
    from cfcclone.checkpoint import load_policy
    from cfcclone.training import TrainConfig
    from cfcclone.training.resume import stored_config

    values = given(args, options)
    if "out" not in values:
        raise ValueError("train needs --out RUN (and --data DIR unless it resumes RUN)")
    if args.resume:
        config = replace_path(stored_config(values["out"]), values)
    elif values.get("init"):
        base = load_policy(values["init"]).train_config or TrainConfig()
        config = replace_path(base, values)
    else:
        config = config_from_args(TrainConfig, args, options)
    if not config.data:
        raise ValueError("train needs --data DIR (a dataset from cfcclone collect)")
    return config


def train(args, options) -> int:
    from cfcclone import distributed
    from cfcclone.training import Trainer

    config = train_config(args, options)
    trainer = Trainer(config, resume=args.resume)
    trainer.fit()
    if trainer.world.main:
        print(f"{config.out}: best.safetensors, last.safetensors, metrics.jsonl")
    distributed.close()
    return 0


def dagger_config(args, options):
    """The recipe of the rounds: a checkpoint --init's stored TrainConfig (else the defaults),
    with the training options typed laid over it."""
    from cfcclone.dagger import DaggerConfig, default_recipe

    values = given(args, options)
    top = {k: v for k, v in values.items() if not k.startswith("train.")}
    recipe = {k[len("train.") :]: v for k, v in values.items() if k.startswith("train.")}
    return DaggerConfig(**top, train=replace_path(default_recipe(top["init"]), recipe))


def dagger(args, options) -> int:
    from cfcclone import distributed
    from cfcclone.dagger import run_dagger, stored_dagger_config

    stored = stored_dagger_config(args.out) if args.resume else None
    if stored is not None:  # the run's own config; the options typed may only agree with it
        config = resumed_dagger_config(*stored, given(args, options))
    elif not hasattr(args, "init"):
        raise ValueError("the following arguments are required: --init (no DAgger run to resume)")
    else:
        config = dagger_config(args, options)
    rows = run_dagger(config, resume=args.resume)
    if distributed.world().main:
        if rows:
            print(f"{config.out}: student {rows[-1]['student']}, metrics.jsonl")
        else:
            print(f"{config.out}: all {config.rounds} rounds are done; --rounds N adds more")
    distributed.close()
    return 0


def resumed_dagger_config(stored, rounds_done: int, typed: dict):
    """A DAgger run's stored config with the `--rounds` typed; another value of any other
    option typed, or fewer rounds than were done, is refused by name."""
    rounds = typed.pop("rounds", stored.rounds)
    out = typed.pop("out", stored.out)  # the folder where it is now
    for path, value in typed.items():
        old = stored
        for part in path.split("."):
            old = getattr(old, part)
        if value != old:
            flag = "--" + path.rsplit(".", 1)[-1].replace("_", "-")
            raise ValueError(f"cannot resume {stored.out} with {flag} {value}: the run has {old}")
    if rounds < rounds_done:
        raise ValueError(
            f"cannot resume {stored.out} with --rounds {rounds}: {rounds_done} rounds are done"
        )
    return dataclasses.replace(stored, rounds=rounds, out=out)


def _same_game(path, env_config, game) -> None:
    """--game with a policy must be the game it was trained on."""
    if game and game != env_config.game:
        raise ValueError(f"{path} plays {env_config.game}, not {game}")


EVAL_ENV_CHANGES = ("obs_noise", "env_kwargs", "frame_skip_jitter")
"""EnvConfig fields that `eval` lays over the checkpoint's env (or the expert's)."""


def evaluate(args, options) -> int:
    from cfcclone import distributed
    from cfcclone.envs import EnvConfig
    from cfcclone.evaluation import evaluate_expert, evaluate_policy

    values = given(args, options)
    game = getattr(args, "game", None)  # not typed: the checkpoint's game, or breakout
    changes = {k: getattr(args, k) for k in EVAL_ENV_CHANGES if hasattr(args, k)}
    if args.expert and args.checkpoint:
        raise ValueError("give a checkpoint or --expert, not both")
    if args.json:
        check_file_target(args.json)  # before the evaluation, not after it
    if args.expert:
        env_config = EnvConfig(game=game, **changes) if game else EnvConfig(**changes)
        values.pop("device", None)  # the RAM experts run on the CPU, in worker processes
        values.pop("threads", None)  # one emulator each
        values.pop("runtime", None)  # they are not policies
        run = partial(evaluate_expert, args.expert, env_config)
        label = f"expert {args.expert} on {env_config.game}"
    elif str(args.checkpoint).endswith(".onnx"):
        from cfcclone.evaluation import evaluate_actor
        from cfcclone.export import OnnxAgent

        agent = lambda n: OnnxAgent(args.checkpoint, n)  # noqa: E731
        env_config = dataclasses.replace(agent(1).env_config, **changes)
        _same_game(args.checkpoint, env_config, game)
        values.pop("device", None)  # onnxruntime's CPU provider
        values.pop("runtime", None)
        run = partial(evaluate_actor, agent, env_config)
        label = f"{args.checkpoint} on {env_config.describe()}"
    elif args.checkpoint:
        from cfcclone.checkpoint import load_policy

        loaded = load_policy(args.checkpoint, values.get("device", "cpu"))
        _same_game(args.checkpoint, loaded.env_config, game)
        loaded.policy.use_bf16(args.bf16)
        env_config = dataclasses.replace(loaded.env_config, **changes)
        run = partial(evaluate_policy, loaded.policy, env_config)
        label = f"{args.checkpoint} on {env_config.describe()}"
    else:
        raise ValueError("give a checkpoint, or --expert planner --game GAME")
    result = _split_episodes(run, values)
    if distributed.world().main:
        print(f"{label}: {result.line()}")
        if args.json:
            atomic_write_text(args.json, json.dumps(result.summary(), indent=1))
    distributed.close()
    return 0


def _split_episodes(run, values: dict):
    """`run(episodes=, seed=, **values)`, its episodes shared out over torchrun's ranks."""
    from cfcclone import distributed
    from cfcclone.agent import resolve_device
    from cfcclone.evaluation import split_over_ranks

    defaults = inspect.signature(run.func).parameters
    episodes = values.pop("episodes", defaults["episodes"].default)
    seed = values.pop("seed", defaults["seed"].default)
    world = distributed.init(resolve_device(values.get("device", "cpu")))
    evaluate = lambda n, s: run(episodes=n, seed=s, progress=world.main, **values)  # noqa: E731
    return split_over_ranks(evaluate, episodes, seed)


def play(args, options) -> int:
    from cfcclone.checkpoint import load_policy
    from cfcclone.play import has_display, play

    values = given(args, options)
    if values.get("render") is None and not values.get("record"):
        if not has_display():
            raise ValueError("no display here: pass --record out.gif (or .mp4) to record")
        values["render"] = "human"
    if str(args.checkpoint).endswith(".onnx"):
        from cfcclone.export import OnnxAgent

        agent = OnnxAgent(args.checkpoint, 1)
        result = play(agent, agent.env_config, **values)
    else:
        loaded = load_policy(args.checkpoint)
        result = play(loaded.policy, loaded.env_config, **values)
    recorded = f"; recorded {values['record']}" if values.get("record") else ""
    print(f"returns {result.returns}{recorded}; {result.latency()}")
    return 0


def export(args, options) -> int:
    from cfcclone.export import export_onnx

    print(export_onnx(**given(args, options)))
    return 0


def plot(args, options) -> int:
    from cfcclone.plotting import plot_run

    print(plot_run(**given(args, options)))
    return 0


def demo(args, options) -> int:
    from cfcclone.demo import PRESETS, DemoConfig, run_demo

    run_demo(config_from_args(DemoConfig, args, options, base=PRESETS[args.preset]))
    return 0


def bench(args, options) -> int:
    from cfcclone.bench import BenchConfig, run_bench
    from cfcclone.bench.report import format_markdown, format_table

    for target in (args.json, args.markdown):
        if target:
            check_file_target(target)  # before the benchmark, not after it
    base = BenchConfig.quick() if args.quick else BenchConfig()
    config = config_from_args(BenchConfig, args, options, base=base)
    results = run_bench(config, args.quick, args.tutorial, args.goals)
    print(format_table(results))
    if args.json:
        atomic_write_text(args.json, json.dumps(results, indent=1))
    if args.markdown:
        atomic_write_text(args.markdown, format_markdown(results))
    return 0


def interrupted(command: str) -> int:
    hint = {
        "collect": "finished shards are kept; rerun the same command with --resume",
        "train": "the last finished epoch is kept; rerun with --resume to continue",
        "dagger": "finished rounds are kept; rerun with --resume to continue",
    }.get(command, "nothing was left half-written")
    print(f"\ncfcclone {command}: interrupted: {hint}", file=sys.stderr)
    return 130
