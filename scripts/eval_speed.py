"""Whole-process rollout speed: `cfcclone eval` of a checkpoint against a one-env loop driving
the same checkpoint, side by side: the NCP tutorial's loop for an ALE clone, a plain gymnasium
loop (`make_env`, `policy.predict` each step) for a clone of a gymnasium env.

Each round runs, as fresh processes, `cfcclone eval CKPT --envs 16 --episodes 16` with its
default (asynchronous) batches, then with `--batch 16` (synchronous), then the tutorial's
`run_closed_loop` (one env, one model call a step, its gymnasium preprocessing) driving the
same checkpoint for as many env steps as the first eval ran. Every figure is env steps over the
process's wall time, imports and loading included; medians over the rounds are printed, and
written as JSON with --json.

    python scripts/eval_speed.py checkpoints/breakout_nature.safetensors \\
        --tutorial ../shared/reference/ncps_tutorial.py --rounds 3
    python scripts/eval_speed.py checkpoints/hopper_cfc.safetensors --rounds 3

A gymnasium env steps all its envs together, so its eval has no asynchronous batches: the
"eval" and "eval_sync" rows run the same command.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TUTORIAL_LOOP = """
import importlib.util, sys, torch
from cfcclone import load_policy
from cfcclone.bench.figures import TutorialLoopPolicy
spec = importlib.util.spec_from_file_location("ncps_tutorial", sys.argv[1])
ref = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ref)
model = TutorialLoopPolicy(load_policy(sys.argv[2]).policy.eval())
_, steps = ref.run_closed_loop(model, ref.make_env("Breakout"), max_steps=int(sys.argv[3]))
print(steps)
"""

ONE_ENV_LOOP = """
import sys, numpy as np
from cfcclone import load_policy, make_env
loaded = load_policy(sys.argv[1])
env = make_env(**loaded.env_config.to_dict())
obs, _ = env.reset(seed=0)
state, start, steps = None, True, 0
while steps < int(sys.argv[2]):
    action, state = loaded.policy.predict(obs, state, np.array([start]))
    obs, _, term, trunc, _ = env.step(action)
    start, steps = term or trunc, steps + 1
    if start:
        obs, _ = env.reset()
print(steps)
"""


def timed(cmd: list[str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if done.returncode:
        sys.exit(f"{' '.join(cmd[:4])}... failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return seconds, done.stdout


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint")
    p.add_argument("--tutorial", help="path to the tutorial's ncps_tutorial.py (ALE clones)")
    p.add_argument("--envs", type=int, default=16)
    p.add_argument("--episodes", type=int, default=16)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json", help="also write the figures to this file")
    args = p.parse_args(argv)
    from cfcclone.checkpoint import read_config
    from cfcclone.envs import env_kind

    gym = env_kind(read_config(args.checkpoint)["env"]["game"]) == "gym"
    if not gym and not args.tutorial:
        p.error("an ALE clone is compared with the tutorial's loop: pass --tutorial")
    rates: dict[str, list[float]] = {"eval": [], "eval_sync": [], "tutorial_loop": []}
    walls: dict[str, list[float]] = {k: [] for k in rates}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "eval.json"
        for r in range(args.rounds):
            base = [sys.executable, "-m", "cfcclone", "eval", args.checkpoint, "--envs"]
            base += [str(args.envs), "--episodes", str(args.episodes), "--json", str(out)]
            steps = 0
            sync = [] if gym else ["--batch", str(args.envs)]
            for name, extra in (("eval", []), ("eval_sync", sync)):
                seconds, _ = timed(base + extra)
                ran = json.loads(out.read_text())["steps"]
                steps = steps or ran
                rates[name].append(ran / seconds)
                walls[name].append(seconds)
            if gym:
                cmd = [sys.executable, "-c", ONE_ENV_LOOP, args.checkpoint, str(steps)]
            else:
                cmd = [sys.executable, "-c", TUTORIAL_LOOP, args.tutorial, args.checkpoint]
                cmd.append(str(steps))
            seconds, printed = timed(cmd)
            rates["tutorial_loop"].append(int(printed.split()[-1]) / seconds)
            walls["tutorial_loop"].append(seconds)
            print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.0f}" for k, v in rates.items()))
    med = {k: float(np.median(v)) for k, v in rates.items()}
    result = {
        "steps_per_s": med,
        "wall_s": {k: float(np.median(v)) for k, v in walls.items()},
        "repeats": rates,
        "eval_over_tutorial_loop": med["eval"] / med["tutorial_loop"],
        "eval_sync_over_tutorial_loop": med["eval_sync"] / med["tutorial_loop"],
        "command": " ".join(["python", "scripts/eval_speed.py", *sys.argv[1:]]),
    }
    print(
        f"whole process, env steps/s (median of {args.rounds}): cfcclone eval {med['eval']:.0f}, "
        f"synchronous {med['eval_sync']:.0f}, tutorial loop {med['tutorial_loop']:.0f}; "
        f"eval/tutorial {result['eval_over_tutorial_loop']:.2f}x "
        f"(synchronous {result['eval_sync_over_tutorial_loop']:.2f}x)"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
