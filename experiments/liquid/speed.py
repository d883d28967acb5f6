"""Training frames/s and rollout steps/s of the cells side by side: the 64-unit dense CfC, the
AutoNCP of 32 neurons on 32 features, and the 64-neuron dense LTC (the nature encoder, the
demo's batch of 16 windows of 16 steps), in interleaved rounds, medians printed.

    python experiments/liquid/speed.py --data runs/liquid/data --rounds 3
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time

import numpy as np
import torch

from cfcclone import StatefulAgent, make_vector_env, rollout
from cfcclone.demo import DEMO_RECIPE
from cfcclone.training import Trainer

CELLS = {
    "cfc, dense, 64": {},
    "cfc, autoncp, 32 on 32 features": dict(wiring="autoncp", units=32, features=32),
    "ltc, dense, 64": dict(core="ltc", units=64),
}


def trainer(data: str, options: dict, out: str) -> Trainer:
    c = dataclasses.replace(DEMO_RECIPE, data=data, out=out, eval_episodes=0, progress=False)
    return Trainer(dataclasses.replace(c, policy=dataclasses.replace(c.policy, **options)))


def train_rate(t: Trainer, batches: int, rng) -> float:
    """Training frames/s of `batches` steps of the trainer's own step."""
    t.policy.train()
    b = [t.train_set.sample(t.config.batch, rng) for _ in range(batches + 1)]
    t.train_step(b[0])  # warm up
    start = time.perf_counter()
    for batch in b[1:]:
        t.train_step(batch)
    frames = batches * t.config.batch * t.config.window.seq_len
    return frames / (time.perf_counter() - start)


def rollout_rate(policy, steps: int, envs: int = 16) -> float:
    """Env steps/s of the torch agent on `envs` synchronous C++ envs."""
    policy.eval()
    env = make_vector_env(num_envs=envs, batch_size=envs)
    agent = StatefulAgent.for_env(policy, env)
    try:
        for i, _ in enumerate(rollout(env, agent, seed=0)):
            if i == 20:
                start = time.perf_counter()
            if i == 20 + steps:
                break
    finally:
        env.close()
    return steps * envs / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="a Breakout dataset (the demo's)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batches", type=int, default=20, help="training steps timed a round")
    p.add_argument("--steps", type=int, default=100, help="rollout steps timed a round")
    args = p.parse_args()
    torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        trainers = {name: trainer(args.data, o, f"{tmp}/{k}")
                    for k, (name, o) in enumerate(CELLS.items())}  # fmt: skip
        rates = {name: ([], []) for name in CELLS}
        for _ in range(args.rounds):
            for name, t in trainers.items():
                rates[name][0].append(train_rate(t, args.batches, rng))
                rates[name][1].append(rollout_rate(t.policy, args.steps))
    print("| cell | training frames/s (median) | rollout steps/s, 16 envs (median) |")
    print("|---|---:|---:|")
    for name, (train, roll) in rates.items():
        print(f"| {name} | {statistics.median(train):,.0f} | {statistics.median(roll):,.0f} |")


if __name__ == "__main__":
    main()
