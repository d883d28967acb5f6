"""A clone trained on a Minari dataset, end to end: make the dataset, import, train, evaluate.

1. Record the Breakout tracker on `ALE/Breakout-v5` through `minari.DataCollector`: raw RGB
   frames, ALE's frame skip 4 (no max-pool), no no-op starts, and v5's sticky actions 0.25
   (with sticky actions off, as in the published sets, Breakout is deterministic and every
   episode of this expert was the same: 328 in the same 4,500 steps). Episodes are cut at
   18,000 frames (5 minutes). The tracker reads the RAM and cannot serve, so the script
   presses FIRE twice after each start and lost life, as cfcclone's FIRE protocol does; those
   FIREs are recorded, as any expert's actions are.
2. `import_minari`: the manifest's EnvConfig says max_pool=False, no no-ops, no FIRE
   protocol, and the clone is evaluated on exactly that.
3. Train with the demo's recipe (`cfcclone.demo.DEMO_RECIPE`).
4. Evaluate the clone on the dataset's env, and the tracker on the same env with the FIRE
   protocol serving for it (what step 1 did by hand), over the same episode seeds.

Every stage is skipped where its output exists, and training resumes: rerun after a crash.

    python scripts/minari_end_to_end.py --work runs/minari --frames 100000
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

MAX_FRAMES = 18_000
"""Emulator frames of an episode (5 minutes of play)."""
FIRE = 1


def make_dataset(dataset_id: str, frames: int, seed: int) -> None:
    import ale_py
    import gymnasium as gym
    import minari

    from cfcclone.envs import FIRE_STEPS
    from cfcclone.experts.tracking import BreakoutTracker

    gym.register_envs(ale_py)
    base = gym.make("ALE/Breakout-v5", max_num_frames_per_episode=MAX_FRAMES)
    env = minari.DataCollector(base, jpeg_encoding=False)
    tracker, steps, episode = BreakoutTracker(1), 0, 0
    while steps < frames:
        _, info = env.reset(seed=seed + episode)
        start, done, total, lives, serve = True, False, 0.0, info["lives"], None
        while not done:
            if serve is None:  # a new ball: FIRE twice
                serve = [FIRE] * FIRE_STEPS
            if serve:
                action = serve.pop(0)
            else:
                ram = env.unwrapped.ale.getRAM()[None]
                action = int(tracker.act(None, np.array([start]), {"ram": ram})[0])
            _, reward, terminated, truncated, info = env.step(action)
            done, start = terminated or truncated, False
            if info["lives"] < lives:
                serve, lives = None, info["lives"]
            steps, total = steps + 1, total + reward
        episode += 1
        print(f"  episode {episode}: return {total:g}, {steps} steps so far", flush=True)
    env.create_dataset(
        dataset_id,
        algorithm_name="cfcclone BreakoutTracker (+ FIRE to serve)",
        author="cfcclone",
        author_email="cfcclone@example.org",
        code_permalink="scripts/minari_end_to_end.py",
        description="Breakout tracker on ALE/Breakout-v5, RGB, sticky actions off",
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", default="runs/minari", help="folder of everything this makes")
    p.add_argument("--frames", type=int, default=100_000, help="tracker steps to record")
    p.add_argument("--episodes", type=int, default=30, help="evaluation episodes")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    work = Path(args.work).resolve()
    os.environ["MINARI_DATASETS_PATH"] = str(work / "minari")
    dataset_id = "cfcclone/breakout/tracker-v0"
    from cfcclone.checkpoint import load_policy
    from cfcclone.data.minari_format import import_minari
    from cfcclone.demo import DEMO_RECIPE
    from cfcclone.evaluation import evaluate_expert, evaluate_policy
    from cfcclone.training import Trainer

    t0 = time.perf_counter()
    if not (work / "minari" / dataset_id).exists():
        print(f"[1/4] recording {args.frames} tracker steps through minari.DataCollector")
        make_dataset(dataset_id, args.frames, args.seed)
    t1 = time.perf_counter()
    if not (work / "data").exists():
        print("[2/4] import-minari")
        import_minari(dataset_id, work / "data")
    t2 = time.perf_counter()
    run = work / "run"
    train = replace(DEMO_RECIPE, data=str(work / "data"), out=str(run))
    print("[3/4] training with the demo's recipe")
    Trainer(train, resume=(run / "train_state.safetensors").exists()).fit()
    t3 = time.perf_counter()
    loaded = load_policy(run / "best.safetensors")
    env = loaded.env_config
    print(f"[4/4] evaluating over {args.episodes} episodes on {env.describe()}")
    clone = evaluate_policy(loaded.policy, env, args.episodes, 16, args.seed + 1)
    expert = evaluate_expert("tracker", replace(env, fire=True), args.episodes, 2, args.seed + 1)
    ratio = clone.mean / expert.mean if expert.mean else None
    print(f"  clone {clone.line()}\n  expert {expert.line()}\n  ratio {ratio:.2f}")
    summary = {
        "env": env.to_dict(),
        "val_acc": loaded.meta["metrics"]["val_acc"],
        "clone": clone.summary(),
        "expert": expert.summary(),
        "ratio": ratio,
        "minutes": {
            "record": (t1 - t0) / 60,
            "import": (t2 - t1) / 60,
            "train": (t3 - t2) / 60,
            "all": (time.perf_counter() - t0) / 60,
        },
    }
    (work / "summary.json").write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
