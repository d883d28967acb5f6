"""`cfcclone demo`: collect from a scripted expert, train a clone, evaluate both, record.

The default is the Breakout `tracker` (a RAM-reading scripted expert made to be cloned) and
the nature encoder: 100,000 frames, 10 epochs of 300 batches of 16 windows of 16 steps at lr
1e-3 (300 steps of warmup, then cosine decay) with sqrt class weights, about 10 minutes on a
2-core CPU.

It leaves OUT/data (the dataset), OUT/run (checkpoints, metrics.jsonl, curves.png), OUT/clone.gif
and OUT/summary.json. A rerun reuses the finished dataset and a finished run.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from cfcclone.checkpoint import load_policy
from cfcclone.data import SequenceDataset, collect
from cfcclone.data.format import MANIFEST, atomic_write_text, read_manifest
from cfcclone.envs import EnvConfig
from cfcclone.evaluation import evaluate_expert, evaluate_policy
from cfcclone.play import play
from cfcclone.training import TrainConfig, Trainer

WEAK_RATIO = 0.5


@dataclass
class DemoConfig:
    out: str = "runs/demo"
    game: str = "breakout"
    expert: str = "tracker"
    """'tracker' (follows the ball, made to be cloned) or 'scripted' (the RAM planner: it
    scores about twice as much, but its clones have not learned to return the ball)."""
    frames: int | None = None
    """Expert frames to collect (default 100,000)."""
    epochs: int | None = None
    """Training epochs (default 10)."""
    encoder: str = "nature"
    lr: float = 1e-3
    warmup: int = 300
    """Steps of learning-rate warmup: at lr 1e-3 without it, one seed in three never learned."""
    schedule: str = "cosine"
    batch: int = 16
    seq_len: int = 16
    batches_per_epoch: int = 300
    """Many small batches learn faster on 2 cores than few large ones."""
    class_weights: str = "sqrt"
    """The expert waits (NOOP) ~70% of the time; unweighted clones learned to only wait."""
    eval_episodes: int = 30
    eval_envs: int = 16
    epoch_eval_episodes: int = 4
    collect_envs: int = 2
    max_episode_frames: int | None = None
    """Cut episodes here (None: the full game, as always outside tests)."""
    gif_steps: int = 1500
    """Steps of the clone's recorded episode."""
    seed: int = 0


def _collect(config: DemoConfig, data: Path) -> None:
    frames = config.frames or 100_000
    if (data / MANIFEST).exists():
        manifest = read_manifest(data)
        if (manifest["expert"], manifest["game"]) != (config.expert, config.game):
            raise ValueError(
                f"{data} holds {manifest['expert']} {manifest['game']} data, not "
                f"{config.expert} {config.game}; choose another --out"
            )
        if manifest.get("status") == "complete":
            print(f"[1/4] reusing the expert data in {data}")
            return
    print(f"[1/4] collecting {frames} frames from the {config.expert} {config.game} expert")
    collect(
        data,
        config.game,
        config.expert,
        frames,
        config.collect_envs,
        config.seed,
        resume=(data / MANIFEST).exists(),
        **(
            {}
            if config.max_episode_frames is None
            else {"max_episode_frames": config.max_episode_frames}
        ),
    )


def _train(config: DemoConfig, data: Path, run: Path) -> None:
    train = TrainConfig(
        data=str(data),
        out=str(run),
        encoder=config.encoder,
        seq_len=config.seq_len,
        batch=config.batch,
        lr=config.lr,
        warmup=config.warmup,
        schedule=config.schedule,
        epochs=config.epochs or 10,
        batches_per_epoch=config.batches_per_epoch,
        class_weights=config.class_weights,
        eval_episodes=config.epoch_eval_episodes,
        eval_envs=4,
        seed=config.seed,
    )
    resume = (run / "train_state.safetensors").exists()
    print(
        f"[2/4] training a {config.encoder} ConvCfC for {train.epochs} epochs"
        + (" (resuming)" if resume else "")
    )
    trainer = Trainer(train, resume=resume)
    trainer.fit()


def run_demo(config: DemoConfig) -> dict:
    """Run the whole job; returns the summary it also writes to OUT/summary.json."""
    t0 = time.perf_counter()
    out = Path(config.out)
    data, run = out / "data", out / "run"
    _collect(config, data)
    _train(config, data, run)
    print(f"[3/4] evaluating the expert and the clone over {config.eval_episodes} episodes each")
    env_config = EnvConfig.from_dict(read_manifest(data)["env"])
    expert = evaluate_expert(
        config.expert, env_config, config.eval_episodes, config.collect_envs, seed=config.seed + 1
    )
    policy = load_policy(run / "best.safetensors")
    clone = evaluate_policy(
        policy, env_config, config.eval_episodes, config.eval_envs, seed=config.seed + 1
    )
    print("[4/4] recording the clone and plotting the curves")
    play(policy, episodes=1, record=out / "clone.gif", seed=config.seed, max_steps=config.gif_steps)
    curves = _plot(run)
    val = SequenceDataset(data, config.seq_len, "val")
    summary = {
        "config": asdict(config),
        "expert": expert.summary(),
        "clone": clone.summary(),
        "ratio": clone.mean / expert.mean if expert.mean else None,
        "best_epoch": policy.checkpoint["epoch"],
        "val_acc": policy.checkpoint["metrics"]["val_acc"],
        "val_episodes": val.episodes,
        "minutes": (time.perf_counter() - t0) / 60,
        "artifacts": {
            "checkpoint": str(run / "best.safetensors"),
            "gif": str(out / "clone.gif"),
            "curves": curves,
        },
    }
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1))
    _report(summary, expert, clone)
    return summary


def _plot(run: Path) -> str | None:
    from cfcclone.plotting import plot_run

    try:
        return str(plot_run(run))
    except ValueError as e:  # matplotlib missing
        print(f"  (no curves: {e})")
        return None


def _report(summary: dict, expert, clone) -> None:
    ratio = summary["ratio"]
    acc = summary["val_acc"]
    print()
    print(f"{'':8}{'mean':>8}{'std':>8}{'min':>7}{'max':>7}{'episodes':>10}")
    for name, r in (("expert", expert), ("clone", clone)):
        print(
            f"{name:8}{r.mean:8.1f}{r.std:8.1f}{min(r.returns):7.0f}{max(r.returns):7.0f}"
            f"{len(r.returns):10d}"
        )
    acc = "n/a" if acc is None else f"{100 * acc:.1f}%"
    shown = "n/a" if ratio is None else f"{ratio:.2f}"
    print(
        f"clone/expert = {shown}; val accuracy of the best epoch "
        f"({summary['best_epoch']}) = {acc}; {summary['minutes']:.1f} minutes"
    )
    if ratio is None or ratio < WEAK_RATIO:
        print(
            f"WEAK CLONE: it scores less than {WEAK_RATIO:.0%} of the expert. More frames "
            "(--frames) or epochs (--epochs) usually help; see the curves."
        )
    a = summary["artifacts"]
    print(f"checkpoint {a['checkpoint']}, GIF {a['gif']}, curves {a['curves']}")
