"""`cfcclone dagger`: recurrent DAgger. The CfC student plays, the expert labels what it saw.

Each round i:
1. **Roll out** the current student in `envs` RAM-exposing vector envs (`make_env`'s
   preprocessing), its hidden state carried by a StatefulAgent and reset per env at each
   episode start. At every step the expert acts too, and with probability beta_i (per env and
   step) its action is the one played: beta_i = beta * beta_decay ** (i - 1).
2. **Label** every visited state with the expert's action. The RAM experts read the emulator,
   so the labels are exact. Where the env's FIRE protocol overrode the action, the label is the
   FIRE that was executed, as in `collect`.
3. **Grow and retrain**: the round's episodes become shards `rNN-eEEE-KKKKK` of the aggregated
   dataset OUT/data, all in its train split, and the student is trained further on the whole
   dataset from its current weights (`TrainConfig.init`). The round's student is the best
   checkpoint of that training, chosen by closed-loop return as in `cfcclone train`.
4. **Report**: the student's greedy return over `eval_episodes` fresh episodes, and the
   agreement of the expert with the student on the states of the round's rollout (with
   beta 0, exactly the student's own states). Rows go to OUT/metrics.jsonl.

`init` is a checkpoint (round 1 starts from it; the aggregate starts empty, or from the expert
data given as `data`) or a dataset of the same expert (round 0 trains the first student on it).
Expert data is hard-linked into OUT/data, not copied. A round's data and training are finished
before OUT/dagger.json records it; `resume` drops what an interrupted round left and plays
that round again.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from cfcclone.agent import StatefulAgent, check_policy_matches_env
from cfcclone.checkpoint import load_policy
from cfcclone.data.format import (
    Segment,
    atomic_write_text,
    list_shards,
    read_manifest,
    summarize,
    sweep_temporaries,
    write_manifest,
    write_shard,
)
from cfcclone.envs import EnvConfig, action_meanings
from cfcclone.evaluation import evaluate_policy, make_ram_vector_env, rollout_threads
from cfcclone.experts import make_expert
from cfcclone.training import TrainConfig, Trainer, resolve_device

STATE = "dagger.json"


@dataclass
class DaggerConfig:
    init: str
    """A cfcclone checkpoint, or a dataset recorded from `expert`."""
    out: str
    """Run directory: data/ (the aggregated dataset), roundNN/ (training runs), metrics.jsonl."""
    data: str | None = None
    """With a checkpoint `init`: expert data (say, what it was trained on) that the aggregated
    dataset starts from. Without it the aggregate holds only the rounds' data."""
    game: str = "breakout"
    expert: str = "scripted"
    """The labelling expert: "scripted", "tracker" or a checkpoint (see `make_expert`)."""
    rounds: int = 4
    labels_per_round: int = 20_000
    """Expert labels (visited states) added per round, over all envs."""
    beta: float = 0.5
    """Odds that the expert's action is played in round 1."""
    beta_decay: float = 0.5
    """beta_i = beta * beta_decay ** (i - 1); 0 makes every later round pure student."""
    envs: int = 8
    train: TrainConfig | None = None
    """The training recipe of each round (its data, out and init are set per round)."""
    init_epochs: int = 8
    """Epochs of the first student where `init` is a dataset."""
    eval_episodes: int = 10
    eval_envs: int = 8
    seed: int = 0
    device: str = "auto"


def _recipe(config: DaggerConfig) -> TrainConfig:
    return config.train or TrainConfig(data="", out="", device=config.device, seed=config.seed)


class _Recorder:
    """Per-env episode buffers that become shards of the aggregated dataset."""

    def __init__(self, root: Path, round_: int, num_envs: int):
        self.root, self.round = root, round_
        self.frames = [[] for _ in range(num_envs)]
        self.labels = [[] for _ in range(num_envs)]
        self.rewards = [[] for _ in range(num_envs)]
        self.count = [0] * num_envs

    def add(self, obs: np.ndarray, labels: np.ndarray, rewards: np.ndarray) -> None:
        for i in range(len(obs)):
            self.frames[i].append(obs[i, -1])
            self.labels[i].append(int(labels[i]))
            self.rewards[i].append(float(rewards[i]))

    def flush(self, i: int, complete: bool) -> None:
        if not self.labels[i]:
            return
        rewards = np.asarray(self.rewards[i], np.float32)
        segment = Segment(
            0, 0, len(rewards), complete=complete, ret=float(rewards.sum()), split="train"
        )
        name = f"r{self.round:02d}-e{i:03d}-{self.count[i]:05d}"
        frames, labels = np.stack(self.frames[i]), np.asarray(self.labels[i])
        write_shard(self.root, name, frames, labels, rewards, [segment])
        self.frames[i], self.labels[i], self.rewards[i] = [], [], []
        self.count[i] += 1


def roll_out(
    policy,
    expert,
    env,
    labels: int,
    beta: float,
    seed: int,
    recorder: _Recorder | None = None,
    device="cpu",
    progress: bool = False,
) -> dict:
    """Play the beta-mixture of expert and student for `labels` steps over the envs of `env`
    (a RAM vector env), labelling every visited state with the expert. Returns the agreement
    of expert and student on the visited states and the returns of the episodes that ended."""
    n = env.num_envs
    agent = StatefulAgent(policy, n, device)
    rng = np.random.default_rng(seed)
    obs, info = env.reset(seed=seed)
    start = np.ones(n, dtype=bool)
    running, returns = np.zeros(n), []
    agree = counted = steps = 0
    with rollout_threads(device), tqdm(total=labels, desc="roll out", disable=not progress) as bar:
        while steps < labels:
            student = agent.act(obs, start)
            wanted = expert.act(obs, info, start)
            played = np.where(rng.random(n) < beta, wanted, student)
            new_obs, reward, terminated, truncated, info = env.step(played)
            executed = _executed(info, played)
            forced = executed != played  # the FIRE protocol served: the label is that FIRE
            agree += int(np.sum((student == wanted) & ~forced))
            counted += int(np.sum(~forced))
            if recorder is not None:
                recorder.add(obs, np.where(forced, executed, wanted), reward)
            running += reward
            start = terminated | truncated
            for i in np.flatnonzero(start):
                returns.append(float(running[i]))
                if recorder is not None:
                    recorder.flush(i, complete=True)
            running[start] = 0.0
            obs, steps = new_obs, steps + n
            bar.update(n)
    if recorder is not None:
        for i in range(n):
            recorder.flush(i, complete=False)
    return {"agreement": agree / max(counted, 1), "labels": steps, "rollout_returns": returns}


def _executed(info: dict, played: np.ndarray) -> np.ndarray:
    """The actions ALE executed: info["action"], or for an env that just ended (and was reset
    in the same step) its final_info["action"]."""
    executed = played.copy()
    for source in (info, info.get("final_info") or {}):
        if "action" in source:
            mask = np.asarray(source.get("_action", np.ones(len(played), bool)), bool)
            executed[mask] = np.asarray(source["action"])[mask]
    return executed


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


def _manifest(config: DaggerConfig, env_config: EnvConfig, status: str, data: Path) -> None:
    write_manifest(
        data,
        {
            "game": config.game,
            "env": env_config.to_dict(),
            "expert": config.expert,
            "seed": config.seed,
            "action_meanings": action_meanings(config.game),
            "dagger": {"init": config.init},
            "status": status,
            **summarize(data),
        },
    )


def _add_expert_data(
    config: DaggerConfig, source: str, data: Path, student: EnvConfig | None = None
) -> EnvConfig:
    """Hard-link a dataset of the labelling expert (recorded with the `student`'s preprocessing,
    where one is given) into the aggregate; returns its EnvConfig. Checks come before links."""
    manifest = read_manifest(source)
    if (manifest["game"], manifest["expert"]) != (config.game, config.expert):
        raise ValueError(
            f"{source} holds {manifest['expert']} {manifest['game']} data; DAgger labels with "
            f"the {config.expert} {config.game} expert, so aggregate data of that expert"
        )
    env_config = EnvConfig.from_dict(manifest["env"])
    if student is not None and env_config != student:
        raise ValueError(f"{source} was recorded with other preprocessing than {config.init}")
    data.mkdir(parents=True, exist_ok=True)
    _link_shards(Path(source), data)
    return env_config


def _start(config: DaggerConfig, out: Path) -> dict:
    """The aggregated dataset and the first student; returns the initial state."""
    data = out / "data"
    if Path(config.init).is_dir():
        if config.data is not None:
            raise ValueError("--data goes with a checkpoint --init; here --init is the data")
        env_config = _add_expert_data(config, config.init, data)
        _manifest(config, env_config, "complete", data)
        run = out / "round00"
        recipe = replace(_recipe(config), data=str(data), out=str(run), epochs=config.init_epochs)
        print(f"round 0: training the first student on {config.init}")
        Trainer(recipe, resume=(run / "train_state.safetensors").exists()).fit()
        student = run / "best.safetensors"
    else:
        policy = load_policy(config.init)
        env_config = policy.env_config
        if env_config.game != config.game:
            raise ValueError(f"{config.init} plays {env_config.game!r}, not {config.game!r}")
        check_policy_matches_env(policy, action_meanings(config.game))
        if config.data is not None:
            _add_expert_data(config, config.data, data, student=env_config)
        data.mkdir(parents=True, exist_ok=True)
        _manifest(config, env_config, "complete", data)
        student = Path(config.init)
    return {"rounds_done": 0, "student": str(student), "labels": summarize(data)["steps"]}


def _save_state(out: Path, state: dict, config: DaggerConfig) -> None:
    atomic_write_text(out / STATE, json.dumps({**state, "config": _config_dict(config)}, indent=1))


def _config_dict(config: DaggerConfig) -> dict:
    d = asdict(config)
    d["train"] = asdict(_recipe(config))
    return d


def _drop_round(data: Path, out: Path, round_: int) -> None:
    """Remove what an interrupted round left: its shards and its training run."""
    sweep_temporaries(data)
    for shard in list_shards(data):
        if shard.name.startswith(f"r{round_:02d}-"):
            shutil.rmtree(shard)
    shutil.rmtree(out / f"round{round_:02d}", ignore_errors=True)


def run_dagger(config: DaggerConfig, resume: bool = False, progress: bool = True) -> list[dict]:
    """Run (or, with `resume`, continue) DAgger; returns the metric rows of this call's rounds."""
    if config.rounds < 1 or config.labels_per_round < 1 or config.envs < 1:
        raise ValueError(
            f"expected rounds, labels_per_round and envs >= 1, got {config.rounds}, "
            f"{config.labels_per_round} and {config.envs}"
        )
    if not 0 <= config.beta <= 1 or not 0 <= config.beta_decay <= 1:
        raise ValueError(
            f"expected beta and beta_decay in [0, 1], got {config.beta} and {config.beta_decay}"
        )
    out, rows = Path(config.out), []
    data = out / "data"
    if (out / STATE).exists() and not resume:
        raise FileExistsError(f"{out} already holds a DAgger run; pass --resume or another --out")
    if resume and (out / STATE).exists():
        state = json.loads((out / STATE).read_text())
    else:
        if out.exists() and any(out.iterdir()) and not resume:
            raise FileExistsError(f"{out} exists and is not empty; choose another --out")
        state = _start(config, out)
        _save_state(out, state, config)
    device = resolve_device(_recipe(config).device)
    env_config = EnvConfig.from_dict(read_manifest(data)["env"])
    for round_ in range(state["rounds_done"] + 1, config.rounds + 1):
        rows.append(_round(config, out, state, round_, env_config, device, progress))
        _save_state(out, state, config)
    return rows


def _round(config, out, state, round_, env_config, device, progress) -> dict:
    t0, data = time.perf_counter(), out / "data"
    _drop_round(data, out, round_)
    beta = config.beta * config.beta_decay ** (round_ - 1)
    policy = load_policy(state["student"], device)
    env = make_ram_vector_env(env_config, config.envs)
    try:
        expert = make_expert(config.expert, config.game, num_envs=config.envs)
        seed = int(np.random.SeedSequence([config.seed, round_]).generate_state(1)[0])
        rollout = roll_out(
            policy,
            expert,
            env,
            config.labels_per_round,
            beta,
            seed,
            _Recorder(data, round_, config.envs),
            device,
            progress,
        )
    finally:
        env.close()
    _manifest(config, env_config, "complete", data)
    run = out / f"round{round_:02d}"
    recipe = replace(_recipe(config), data=str(data), out=str(run), init=state["student"])
    Trainer(recipe).fit()
    student = run / "best.safetensors"
    result = None
    if config.eval_episodes > 0:
        result = evaluate_policy(
            load_policy(student, device),
            env_config,
            config.eval_episodes,
            config.eval_envs,
            seed=20_000 + round_,
            device=device,
        )
    state.update(
        rounds_done=round_, student=str(student), labels=state["labels"] + rollout["labels"]
    )
    row = {
        "round": round_,
        "beta": beta,
        "labels": state["labels"],
        "agreement": rollout["agreement"],
        "return_mean": result and result.mean,
        "return_std": result and result.std,
        "returns": result and result.returns,
        "student": str(student),
        "minutes": (time.perf_counter() - t0) / 60,
    }
    with open(out / "metrics.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")
    shown = "n/a" if result is None else f"{result.mean:.1f} ± {result.std:.1f}"
    print(
        f"round {round_}: beta {beta:.2f}, {state['labels']} labels, agreement "
        f"{100 * rollout['agreement']:.1f}%, student return {shown}"
    )
    return row
