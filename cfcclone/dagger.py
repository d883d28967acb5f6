"""`cfcclone dagger`: recurrent DAgger. The CfC student plays, the expert labels what it saw.

Each round i:
1. **Roll out** the current student in `envs` envs (the same preprocessing as everywhere:
   RAM envs for the RAM experts, asynchronous C++ envs for a checkpoint expert, which plays
   from the frames) through the one rollout loop, its hidden state carried by a
   StatefulAgent and reset per env at each episode start. At every step the expert acts
   too, and with probability beta_i (per env and step) its action is the one played:
   beta_i = beta * beta_decay ** (i - 1).
2. **Label** every visited state with the expert's action. The RAM experts read the emulator,
   so the labels are exact. Where the env's FIRE protocol overrode the action, the label is the
   FIRE that was executed, as in `collect`. The executed actions are kept beside the labels
   (`executed.npy`), for students that read the previous action (`PolicyConfig.prev_action`).
3. **Grow and retrain**: the round's episodes become shards `rNN-eEEE-KKKKK` of the aggregated
   dataset OUT/data, all in its train split, and the student is trained further on the whole
   dataset from its current weights (`TrainConfig.init`). The round's student is the best
   checkpoint of that training, chosen by closed-loop return as in `cfcclone train`.
4. **Report**: the student's greedy return over `round_eval_episodes` fresh episodes, and the
   agreement of the expert with the student on the states of the round's rollout (with
   beta 0, exactly the student's own states). Rows go to OUT/metrics.jsonl.

`init` is a checkpoint (round 1 starts from it; the aggregate starts empty, or from the expert
data given as `data`) or a dataset of the same expert (round 0 trains the first student on it).
The recipe of every round is `train`: by default the TrainConfig stored in a checkpoint
`init`, so only what changes needs saying. Expert data is hard-linked into OUT/data, not
copied. A round's data and training are finished before OUT/dagger.json records it; `resume`
drops what an interrupted round left and plays that round again.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cfcclone import distributed
from cfcclone.agent import check_policy_matches_env
from cfcclone.atomic import append_line, atomic_write_text
from cfcclone.checkpoint import load_policy
from cfcclone.config import Config, check
from cfcclone.data.format import list_shards, sweep_temporaries
from cfcclone.data.manifest import Manifest
from cfcclone.envs import EnvConfig
from cfcclone.evaluation import evaluate_policy, split_over_ranks
from cfcclone.experts import expert_name, make_expert, needs_ram
from cfcclone.labelling import roll_out, round_writer
from cfcclone.training import TrainConfig, Trainer, resolve_device
from cfcclone.training.resume import DAGGER_STATE
from cfcclone.training.resume import STATE as TRAIN_STATE
from cfcclone.vector_env import default_batch, make_vector_env

STATE = DAGGER_STATE


@dataclass(frozen=True)
class DaggerConfig(Config):
    """A DAgger run: where it starts, the labelling expert, the rounds and their recipe."""

    init: str
    """A cfcclone checkpoint, or a dataset recorded from `expert`."""
    out: str
    """Run directory: data/ (the aggregated dataset), roundNN/ (training runs), metrics.jsonl."""
    data: str | None = None
    """With a checkpoint init: expert data (say, what it was trained on) that the aggregated
    dataset starts from. Without it the aggregate holds only the rounds' data."""
    expert: str = "planner"
    """The labelling expert: planner, tracker or a checkpoint (see cfcclone.experts)."""
    rounds: int = 4
    """DAgger rounds."""
    labels_per_round: int = 20_000
    """Expert labels (visited states) added per round, over all envs."""
    beta: float = 0.5
    """Odds that the expert's action is played in round 1."""
    beta_decay: float = 0.5
    """beta_i = beta * beta_decay ** (i - 1); 0 makes every later round pure student."""
    envs: int = 8
    """Envs of each round's rollout."""
    init_epochs: int = 8
    """Epochs of the first student, where init is a dataset."""
    round_eval_episodes: int = 10
    """Episodes of each round's student report (0: none)."""
    train: TrainConfig | None = None
    """The recipe of each round (its data, out and init are set per round). Unset: the
    TrainConfig stored in a checkpoint init (else TrainConfig's defaults), and the options
    given on the command line change only what they name."""

    def __post_init__(self):
        for name in ("rounds", "labels_per_round", "envs", "init_epochs"):
            check(getattr(self, name) >= 1, f"expected {name} >= 1, got {getattr(self, name)}")
        check(
            0 <= self.beta <= 1 and 0 <= self.beta_decay <= 1,
            f"expected beta and beta_decay in [0, 1], got {self.beta} and {self.beta_decay}",
        )


def _link_shards(src: Path, dst: Path) -> None:
    """Hard-link (or copy, across file systems) every finished shard of src into dst."""
    for shard in list_shards(src):
        target = dst / "shards" / shard.name
        if target.exists():
            continue
        tmp = target.with_name(target.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(shard, tmp, copy_function=_link_or_copy)
        os.replace(tmp, target)


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _write_manifest(config: DaggerConfig, env_config: EnvConfig, data: Path) -> None:
    from cfcclone.envs import env_specs

    obs, action, meanings = env_specs(env_config)
    manifest = Manifest(
        game=env_config.game,
        env=env_config,
        obs=obs,
        action=action,
        action_meanings=meanings,
        expert=expert_name(config.expert),
        source="dagger",
        seed=config.train.seed,
        dagger={"init": config.init},
    )
    manifest.summarized(data).write(data)


def _add_expert_data(config: DaggerConfig, source: str, data: Path, student=None) -> EnvConfig:
    """Hard-link a dataset of the labelling expert (recorded with the `student`'s preprocessing,
    where one is given) into the aggregate; returns its EnvConfig. Checks come before links."""
    manifest = Manifest.read(source)
    if expert_name(manifest.expert) != expert_name(config.expert):
        raise ValueError(
            f"{source} holds {manifest.expert} {manifest.game} data; DAgger labels with "
            f"the {expert_name(config.expert)} expert, so aggregate data of that expert"
        )
    # the stack and the mask are the student's view of the stored frames or states, not how
    # they were recorded: data of one stack (or full states) serves a student of another
    recorded = manifest.env
    if student is not None:
        recorded = dataclasses.replace(recorded, stack=student.stack, obs_mask=student.obs_mask)
    if student is not None and recorded != student:
        raise ValueError(f"{source} was recorded with other preprocessing than {config.init}")
    data.mkdir(parents=True, exist_ok=True)
    _link_shards(Path(source), data)
    return manifest.env


def _start(config: DaggerConfig, out: Path) -> dict:
    """The aggregated dataset and the first student; returns the initial state."""
    data, main = out / "data", distributed.world().main
    if Path(config.init).is_dir():
        if config.data is not None:
            raise ValueError("--data goes with a checkpoint --init; here --init is the data")
        if main:  # the aggregate is written once, by rank 0
            _write_manifest(config, _add_expert_data(config, config.init, data), data)
        distributed.barrier("waiting for rank 0 to link the expert data")
        run = out / "round00"
        recipe = dataclasses.replace(
            config.train, data=str(data), out=str(run), epochs=config.init_epochs
        )
        if main:
            print(f"round 0: training the first student on {config.init}")
        Trainer(recipe, resume=(run / "train_state.safetensors").exists()).fit()
        student = run / "best.safetensors"
    else:
        loaded = load_policy(config.init)
        env_config = loaded.env_config
        make_expert(config.expert, env_config.game)  # the expert must play the student's game
        if main:
            if config.data is not None:
                _add_expert_data(config, config.data, data, student=env_config)
            data.mkdir(parents=True, exist_ok=True)
            _write_manifest(config, env_config, data)
        distributed.barrier("waiting for rank 0 to start the aggregate")
        student = Path(config.init)
    return {
        "rounds_done": 0,
        "student": _relative(student.resolve(), out),
        "labels": Manifest.read(data).steps,
    }


def _relative(path: Path, out: Path) -> str:
    """`path` relative to the run folder where it lies inside it, else absolute."""
    try:
        return str(path.relative_to(out))
    except ValueError:
        return str(path)


def _save_state(out: Path, state: dict, config: DaggerConfig) -> None:
    if distributed.world().main:
        text = json.dumps({**state, "config": config.to_dict()}, indent=1)
        atomic_write_text(out / STATE, text)


def _drop_round(data: Path, out: Path, round_: int) -> None:
    """Remove what an interrupted round left: its shards and its training run."""
    sweep_temporaries(data)
    for shard in list_shards(data):
        if shard.name.startswith(f"r{round_:02d}-"):
            shutil.rmtree(shard)
    shutil.rmtree(out / f"round{round_:02d}", ignore_errors=True)


def stored_dagger_config(out) -> tuple[DaggerConfig, int] | None:
    """The DaggerConfig of the DAgger run in `out` and its rounds done; None where there is
    none (no round began)."""
    path = Path(out) / STATE
    if not path.exists():
        return None
    state = json.loads(path.read_text())
    return DaggerConfig.from_dict(state["config"], str(path)), state["rounds_done"]


def default_recipe(init: str) -> TrainConfig:
    """The TrainConfig stored in checkpoint `init`, else (a dataset, an old checkpoint)
    TrainConfig's defaults."""
    if Path(init).is_file():
        stored = load_policy(init).train_config
        if stored is not None:
            return stored
    return TrainConfig()


def run_dagger(config: DaggerConfig, resume: bool = False, progress: bool = True) -> list[dict]:
    """Run (or, with `resume`, continue) DAgger; returns the metric rows of this call's rounds.
    A resumed run keeps the config stored in OUT/dagger.json; only `rounds` may grow.

        from cfcclone import DaggerConfig, run_dagger
        run_dagger(DaggerConfig(init="runs/bc/best.safetensors", out="runs/dagger",
                                expert="tracker", rounds=3))
    """
    out, rows = Path(config.out).resolve(), []
    data = out / "data"
    distributed.init(resolve_device(config.train.device if config.train else "cpu"))
    if (out / STATE).exists() and not resume:
        raise FileExistsError(f"{out} already holds a DAgger run; pass --resume or another --out")
    if (out / TRAIN_STATE).exists():
        raise FileExistsError(f"{out} holds a train run, not a DAgger run; pass another --out")
    if resume and (out / STATE).exists():
        state = json.loads((out / STATE).read_text())
        stored = DaggerConfig.from_dict(state.pop("config"), str(out / STATE))
        config = dataclasses.replace(stored, rounds=config.rounds)  # more rounds may be asked
    else:
        if config.train is None:
            config = dataclasses.replace(config, train=default_recipe(config.init))
        if out.exists() and any(out.iterdir()) and not resume:
            raise FileExistsError(f"{out} exists and is not empty; choose another --out")
        distributed.barrier("checking the run folder")  # every rank looked before any writes
        state = _start(config, out)
        _save_state(out, state, config)
    device = resolve_device(config.train.device)
    env_config = Manifest.read(data).env
    for round_ in range(state["rounds_done"] + 1, config.rounds + 1):
        rows.append(_round(config, out, state, round_, env_config, device, progress))
        _save_state(out, state, config)
    return rows


def _round(config, out, state, round_, env_config, device, progress) -> dict:
    t0, data, world = time.perf_counter(), out / "data", distributed.world()
    if world.main:
        _drop_round(data, out, round_)
    distributed.barrier("waiting for rank 0 to drop an interrupted round")
    beta = config.beta * config.beta_decay ** (round_ - 1)
    previous = out / state["student"]  # relative to OUT: the run can move, or resume elsewhere
    policy = load_policy(previous, device).policy
    manifest = Manifest.read(data)
    check_policy_matches_env(policy, manifest.action_meanings, manifest.action)
    # a checkpoint expert plays from the frames: asynchronous C++ envs; RAM experts read every
    # env's RAM each step: synchronous RAM envs (gymnasium envs step all together)
    ram = needs_ram(config.expert)
    together = ram or env_config.kind == "gym" or env_config.frame_skip_jitter
    batch = None if together else default_batch(config.envs)
    env = make_vector_env(num_envs=config.envs, batch_size=batch, config=env_config, ram=ram)
    try:
        expert = make_expert(config.expert, env_config.game, config.envs, str(device))
        # under torchrun each rank plays its share of the labels, from its own seed
        key = [config.train.seed, round_] + [world.rank] * (world.size > 1)
        seed = int(np.random.SeedSequence(key).generate_state(1)[0])
        writer = round_writer(data, round_, config.envs, env_config.game, world.rank * config.envs)
        labels = len(range(world.rank, config.labels_per_round, world.size))
        rollout_stats = roll_out(
            policy, expert, env, labels, beta, seed, writer, device, progress and world.main
        )
    finally:
        env.close()
    agreed, counted, played, abs_diff, sq_diff = distributed.all_sum(
        [rollout_stats[k] for k in ("agreed", "counted", "labels", "abs_diff", "sq_diff")]
    )
    distributed.barrier("waiting for the other ranks' rollouts")
    if world.main:
        _write_manifest(config, env_config, data)
    run = out / f"round{round_:02d}"
    recipe = dataclasses.replace(config.train, data=str(data), out=str(run), init=str(previous))
    Trainer(recipe).fit()
    student = run / "best.safetensors"
    result = None
    if config.round_eval_episodes > 0:
        student_policy = load_policy(student, device).policy
        result = split_over_ranks(
            lambda n, seed: evaluate_policy(
                student_policy, env_config, n, config.train.eval_envs, seed, device
            ),
            config.round_eval_episodes,
            20_000 + round_,
        )
    labels = state["labels"] + int(played)
    box = manifest.action.is_box
    agreement = None if box else agreed / max(counted, 1)
    state.update(rounds_done=round_, student=_relative(student, out), labels=labels)
    row = {
        "round": round_,
        "beta": beta,
        "labels": labels,
        "agreement": agreement,
        **(
            {"action_mae": abs_diff / max(counted, 1), "action_mse": sq_diff / max(counted, 1)}
            if box
            else {}
        ),
        "return_mean": result and result.mean,
        "return_std": result and result.std,
        "returns": result and result.returns,
        "student": str(student),
        "minutes": (time.perf_counter() - t0) / 60,
    }
    if world.main:
        append_line(out / "metrics.jsonl", json.dumps(row))
        shown = "n/a" if result is None else f"{result.mean:.1f} ± {result.std:.1f}"
        agreed = (
            f"action |diff| {row['action_mae']:.3f}" if box else f"agreement {100 * agreement:.1f}%"
        )
        print(f"round {round_}: beta {beta:.2f}, {labels} labels, {agreed}, student return {shown}")
    return row
