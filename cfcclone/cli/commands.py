"""The commands that train, evaluate and show policies: train, dagger, demo, eval, play,
export, plot, bench (the data commands are in `data_commands`).

Each is `name(argv) -> exit code`: its options (`cfcclone.cli.options`, parsed by tyro), then
the library call. A command's own options are a small dataclass with field docstrings.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import sys
from dataclasses import dataclass
from functools import partial

from tyro.conf import Positional

from cfcclone.atomic import atomic_write_text, check_file_target
from cfcclone.cli.options import Options, call, parse, peek


@dataclass(frozen=True)
class TrainOptions:
    """train's own options."""

    resume: bool = False
    """Continue RUN (--out) from its last epoch, with its stored options."""


def train_config(argv) -> tuple[TrainOptions, object]:
    """A fresh run from the defaults; with --init, from the checkpoint's stored recipe; with
    --resume, the run's stored config. The options typed are laid over it."""
    from cfcclone.checkpoint import load_policy
    from cfcclone.training import TrainConfig
    from cfcclone.training.resume import stored_config

    typed = peek(argv, "--out", "--init", switches=("--resume",))
    if typed.resume and not typed.out:
        raise ValueError("train --resume needs --out RUN")
    if typed.resume:
        base = stored_config(typed.out)
    elif typed.init:
        base = load_policy(typed.init).train_config or TrainConfig()
    else:
        base = TrainConfig()
    hidden = frozenset({(TrainConfig, "progress")})
    parts = [
        Options(TrainOptions, name="own"),
        Options(TrainConfig, name="train", base=base, hidden=hidden),
    ]
    values = parse("train", parts, argv)
    config = values["train"]
    if not config.out:
        raise ValueError("train needs --out RUN (and --data DIR unless it resumes RUN)")
    if not config.data:
        raise ValueError("train needs --data DIR (a dataset from cfcclone collect)")
    return values["own"], config


def train(argv) -> int:
    from cfcclone import distributed
    from cfcclone.training import Trainer

    own, config = train_config(argv)
    trainer = Trainer(config, resume=own.resume)
    trainer.fit()
    if trainer.world.main:
        print(f"{config.out}: best.safetensors, last.safetensors, metrics.jsonl")
    distributed.close()
    return 0


def _set_per_round() -> frozenset:
    """TrainConfig's fields that DAgger and the demo set for each training they run."""
    from cfcclone.training import TrainConfig

    return frozenset((TrainConfig, name) for name in ("data", "out", "init", "progress"))


@dataclass(frozen=True)
class DaggerOptions:
    """dagger's own options."""

    resume: bool = False
    """Continue an interrupted DAgger run (its stored options; --rounds may grow)."""


def dagger_config(argv):
    """The DAgger run's config. A fresh run's recipe is checkpoint --init's stored TrainConfig
    (else the defaults) with the training options typed laid over it; a resumed run keeps its
    stored config, the options typed may only agree with it (and --rounds grow). Returns
    (options, config, rounds done)."""
    from cfcclone.dagger import DaggerConfig, default_recipe, stored_dagger_config
    from cfcclone.training import TrainConfig

    typed = peek(argv, "--out", "--init", switches=("--resume",))
    stored = stored_dagger_config(typed.out) if typed.resume and typed.out else None
    own = Options(DaggerOptions, name="own")
    if stored is not None:
        config, done = stored
        part = Options(DaggerConfig, name="dagger", base=config, hidden=_set_per_round())
        values = parse("dagger", [own, part], argv)
        return values["own"], resumed_dagger_config(config, done, values["dagger"]), done
    if not (typed.init or typed.help):
        raise ValueError("the following arguments are required: --init (no DAgger run to resume)")
    # a fresh run: its recipe is the one stored in --init (for --help, the defaults)
    recipe = default_recipe(typed.init) if typed.init else TrainConfig()
    defaults = {(DaggerConfig, "train"): recipe}
    part = Options(DaggerConfig, name="dagger", hidden=_set_per_round(), defaults=defaults)
    values = parse("dagger", [own, part], argv)
    return values["own"], values["dagger"], 0


def dagger(argv) -> int:
    from cfcclone import distributed
    from cfcclone.dagger import run_dagger

    own, config, _ = dagger_config(argv)
    rows = run_dagger(config, resume=own.resume)
    if distributed.world().main:
        if rows:
            print(f"{config.out}: student {rows[-1]['student']}, metrics.jsonl")
        else:
            print(f"{config.out}: all {config.rounds} rounds are done; --rounds N adds more")
    distributed.close()
    return 0


def resumed_dagger_config(stored, rounds_done: int, typed):
    """A DAgger run's stored config with the `--rounds` typed; another value of any other
    option typed (`typed`: the stored config with the options typed laid over it), or fewer
    rounds than were done, is refused by name."""
    for path, old, value in _differences(stored, typed):
        if path not in ("rounds", "out"):  # out: the folder where the run is now
            flag = "--" + path.rsplit(".", 1)[-1].replace("_", "-")
            raise ValueError(f"cannot resume {stored.out} with {flag} {value}: the run has {old}")
    if typed.rounds < rounds_done:
        raise ValueError(
            f"cannot resume {stored.out} with --rounds {typed.rounds}: "
            f"{rounds_done} rounds are done"
        )
    return typed


def _differences(a, b, prefix=""):
    """(dotted path, a's value, b's value) of each field where two configs differ."""
    for f in dataclasses.fields(a):
        old, new = getattr(a, f.name), getattr(b, f.name)
        if dataclasses.is_dataclass(old) and dataclasses.is_dataclass(new):
            yield from _differences(old, new, prefix + f.name + ".")
        elif old != new:
            yield prefix + f.name, old, new


def _same_game(path, env_config, game) -> None:
    """--game with a policy must be the game it was trained on."""
    if game and game != env_config.game:
        raise ValueError(f"{path} plays {env_config.game}, not {game}")


EVAL_ENV_CHANGES = ("obs_noise", "env_kwargs", "frame_skip_jitter")
"""EnvConfig fields that `eval` lays over the checkpoint's env (or the expert's)."""


@dataclass(frozen=True)
class EvalOptions:
    """What eval scores, and where its results go."""

    checkpoint: Positional[str | None] = None
    """A checkpoint (.safetensors) or its .onnx export."""
    expert: str | None = None
    """Score an expert instead: planner, tracker, module:function."""
    bf16: bool = False
    """bf16 encoder (faster, not bit-exact)."""
    json: str | None = None
    """Also write the results to this file."""


def evaluate(argv) -> int:
    from cfcclone import distributed
    from cfcclone.envs import EnvConfig
    from cfcclone.evaluation import evaluate_expert, evaluate_policy

    parts = [
        Options(EvalOptions, name="own"),
        Options(evaluate_policy, skip=("policy", "env_config", "progress")),
        # the env: the checkpoint's, where one is given; these change it
        Options(EnvConfig, name="env", overlay=("game", *EVAL_ENV_CHANGES)),
    ]
    values = parse("eval", parts, argv)
    args, env = values.pop("own"), values.pop("env")
    game = env.pop("game")  # None: the checkpoint's game, or breakout
    changes = {k: v for k, v in env.items() if v is not None}
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


@dataclass(frozen=True)
class PlayOptions:
    """What play plays."""

    checkpoint: Positional[str]
    """A checkpoint (.safetensors) or its .onnx export."""


def play(argv) -> int:
    from cfcclone.checkpoint import load_policy
    from cfcclone.play import has_display, play

    parts = [Options(PlayOptions, name="own"), Options(play, skip=("policy", "env_config"))]
    values = parse("play", parts, argv)
    checkpoint = values.pop("own").checkpoint
    if values.get("render") is None and not values.get("record"):
        if not has_display():
            raise ValueError("no display here: pass --record out.gif (or .mp4) to record")
        values["render"] = "human"
    if str(checkpoint).endswith(".onnx"):
        from cfcclone.export import OnnxAgent

        agent = OnnxAgent(checkpoint, 1)
        result = play(agent, agent.env_config, **values)
    else:
        loaded = load_policy(checkpoint)
        result = play(loaded.policy, loaded.env_config, **values)
    recorded = f"; recorded {values['record']}" if values.get("record") else ""
    print(f"returns {result.returns}{recorded}; {result.latency()}")
    return 0


def export(argv) -> int:
    from cfcclone.export import export_onnx

    print(call("export", export_onnx, argv, positional=("checkpoint",)))
    return 0


def plot(argv) -> int:
    from cfcclone.plotting import plot_run

    print(call("plot", plot_run, argv, positional=("run",)))
    return 0


def demo(argv) -> int:
    from cfcclone.demo import PRESETS, DemoConfig, run_demo

    preset = peek(argv, "--preset").preset or "breakout"
    if preset not in PRESETS:
        raise ValueError(f"unknown --preset {preset!r}; expected one of {sorted(PRESETS)}")
    parts = [
        Options(DemoOptions, name="own"),
        Options(DemoConfig, name="demo", base=PRESETS[preset], hidden=_set_per_round()),
    ]
    run_demo(parse("demo", parts, argv)["demo"])
    return 0


@dataclass(frozen=True)
class DemoOptions:
    """The demo's job."""

    preset: str = "breakout"
    """The job the options change: breakout (the default) or hopper (MuJoCo Hopper-v5)."""


@dataclass(frozen=True)
class BenchOptions:
    """bench's sizes, its peer and its reports."""

    quick: bool = False
    """Tiny sizes: seconds, not figures."""
    tutorial: str | None = None
    """The tutorial's ncps_tutorial.py (its rows are skipped without)."""
    goals: str | None = None
    """A JSON file of goals to check the figures against."""
    json: str | None = None
    """Also write the results to this file."""
    markdown: str | None = None
    """Write a markdown section: machine, versions, tables."""


def bench(argv) -> int:
    from cfcclone.bench import BenchConfig, run_bench
    from cfcclone.bench.report import format_markdown, format_table

    base = BenchConfig.quick() if peek(argv, switches=("--quick",)).quick else BenchConfig()
    parts = [Options(BenchOptions, name="own"), Options(BenchConfig, name="bench", base=base)]
    values = parse("bench", parts, argv)
    args, config = values["own"], values["bench"]
    for target in (args.json, args.markdown):
        if target:
            check_file_target(target)  # before the benchmark, not after it
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
