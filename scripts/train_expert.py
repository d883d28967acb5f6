"""Train a continuous-control state expert with TD3 (CleanRL-style, one file), resumably.

The Hopper expert of `checkpoints/` comes from this script:

    python scripts/train_expert.py --env Hopper-v5 --out runs/expert/hopper --seed 0

TD3 (Fujimoto et al. 2018) as CleanRL's `td3_continuous_action.py` writes it: actor and twin
critics of 256-256 ReLU units, target policy smoothing, a delayed actor, Gaussian exploration.
A batch of 128 instead of 256 doubles the updates a second on a 2-core CPU (SB3's TD3 ran 67
steps/s there). Every `--eval-every` steps the deterministic actor plays `--eval-episodes`
episodes; each evaluation writes the run's state (networks, optimisers, replay buffer, RNGs)
atomically, so a killed run continues with `--resume`, and the best actor so far as
`best.safetensors`, a `cfcclone.experts.mlp.MLPExpert` that `--expert PATH` plays without
this script, SB3 or a pickle.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
from tqdm.auto import tqdm

from cfcclone.experts.mlp import MLPExpert


def mlp(sizes: list[int], tanh: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = []
    for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers += [nn.Linear(a, b), nn.ReLU()] if k < len(sizes) - 2 else [nn.Linear(a, b)]
    return nn.Sequential(*layers, *([nn.Tanh()] if tanh else []))


class TD3:
    def __init__(self, obs_dim: int, act_dim: int, hidden: list[int], lr: float):
        self.actor = mlp([obs_dim, *hidden, act_dim], tanh=True)
        self.q1, self.q2 = (mlp([obs_dim + act_dim, *hidden, 1]) for _ in range(2))
        self.targets = [copy.deepcopy(m) for m in (self.actor, self.q1, self.q2)]
        self.q_optim = torch.optim.Adam([*self.q1.parameters(), *self.q2.parameters()], lr)
        self.a_optim = torch.optim.Adam(self.actor.parameters(), lr)

    def modules(self) -> dict:
        names = (
            "actor",
            "q1",
            "q2",
            "target_actor",
            "target_q1",
            "target_q2",
            "q_optim",
            "a_optim",
        )
        mods = (self.actor, self.q1, self.q2, *self.targets, self.q_optim, self.a_optim)
        return dict(zip(names, mods, strict=True))

    def update(self, o, a, r, o2, d, step: int, gamma=0.99, tau=0.005) -> None:
        ta, t1, t2 = self.targets
        with torch.no_grad():
            noise = (torch.randn_like(a) * 0.2).clamp(-0.5, 0.5)
            x2 = torch.cat([o2, (ta(o2) + noise).clamp(-1, 1)], 1)
            y = r + gamma * (1 - d) * torch.min(t1(x2), t2(x2)).view(-1)
        x = torch.cat([o, a], 1)
        loss = ((self.q1(x).view(-1) - y) ** 2).mean() + ((self.q2(x).view(-1) - y) ** 2).mean()
        self.q_optim.zero_grad()
        loss.backward()
        self.q_optim.step()
        if step % 2:
            return
        actor_loss = -self.q1(torch.cat([o, self.actor(o)], 1)).mean()
        self.a_optim.zero_grad()
        actor_loss.backward()
        self.a_optim.step()
        with torch.no_grad():
            for net, target in zip((self.actor, self.q1, self.q2), self.targets, strict=True):
                for p, tp in zip(net.parameters(), target.parameters(), strict=True):
                    tp.mul_(1 - tau).add_(tau * p)


def evaluate(actor, env_id: str, episodes: int, seed: int, low, high) -> list[float]:
    """Deterministic returns over `episodes` episodes, a fixed quota per env."""
    n = min(episodes, 10)
    env = gym.vector.SyncVectorEnv([lambda: gym.make(env_id)] * n)
    quota = np.array([len(range(i, episodes, n)) for i in range(n)])
    obs, _ = env.reset(seed=seed)
    returns, running, ended = [], np.zeros(n), np.zeros(n, int)
    while (ended < quota).any():
        with torch.no_grad():
            a = actor(torch.as_tensor(obs, dtype=torch.float32)).numpy()
        obs, reward, term, trunc, _ = env.step(low + 0.5 * (a + 1) * (high - low))
        running += reward
        for i in np.flatnonzero(term | trunc):
            if ended[i] < quota[i]:
                returns.append(float(running[i]))
            ended[i] += 1
            running[i] = 0.0
    env.close()
    return returns


def save_state(path: Path, agent: TD3, buffer: dict, size: int, extra: dict) -> None:
    tmp = path.with_suffix(".tmp")
    state = {k: m.state_dict() for k, m in agent.modules().items()}
    arrays = {k: v[:size] for k, v in buffer.items()}
    torch.save({"modules": state, "buffer": arrays, "size": size, **extra}, tmp)
    os.replace(tmp, path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="Hopper-v5")
    p.add_argument("--steps", type=int, default=1_000_000)
    p.add_argument("--learning-starts", type=int, default=10_000)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--hidden", type=int, nargs="+", default=[256, 256])
    p.add_argument("--eval-every", type=int, default=20_000)
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", required=True)
    p.add_argument("--resume", action="store_true")
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    env = gym.make(args.env)
    low, high = env.action_space.low, env.action_space.high
    od, ad = env.observation_space.shape[0], env.action_space.shape[0]
    agent = TD3(od, ad, args.hidden, args.lr)
    buffer = {
        "obs": np.zeros((args.steps, od), np.float32),
        "act": np.zeros((args.steps, ad), np.float32),
        "rew": np.zeros(args.steps, np.float32),
        "next": np.zeros((args.steps, od), np.float32),
        "done": np.zeros(args.steps, np.float32),
    }
    rng = np.random.default_rng(args.seed)
    torch.manual_seed(args.seed)
    step, best, episode = 0, -np.inf, 0
    if args.resume and (out / "state.pt").exists():
        # our own file, written below: the one pickle this script reads
        state = torch.load(out / "state.pt", weights_only=False)
        for k, m in agent.modules().items():
            m.load_state_dict(state["modules"][k])
        for k, v in state["buffer"].items():
            buffer[k][: len(v)] = v
        step, best, episode = state["size"], state["best"], state["episode"]
        rng.bit_generator.state = state["numpy_rng"]
        torch.set_rng_state(state["torch_rng"])
    elif out.exists() and any(out.iterdir()):
        raise SystemExit(f"{out} is not empty; pass --resume or another --out")
    out.mkdir(parents=True, exist_ok=True)
    obs, _ = env.reset(seed=args.seed * 1_000_003 + episode)
    t0 = time.time()
    bar = tqdm(total=args.steps, initial=step, unit="step", desc=f"td3 {args.env}")
    while step < args.steps:
        if step < args.learning_starts:
            a = rng.uniform(-1, 1, ad).astype(np.float32)
        else:
            with torch.no_grad():
                a = agent.actor(torch.as_tensor(obs[None], dtype=torch.float32))[0].numpy()
            a = np.clip(a + rng.normal(0, 0.1, ad), -1, 1).astype(np.float32)
        next_obs, reward, term, trunc, _ = env.step(low + 0.5 * (a + 1) * (high - low))
        for key, value in zip(buffer, (obs, a, reward, next_obs, float(term)), strict=True):
            buffer[key][step] = value
        obs, step = next_obs, step + 1
        if term or trunc:
            episode += 1
            obs, _ = env.reset(seed=args.seed * 1_000_003 + episode)
        if step >= args.learning_starts:
            idx = rng.integers(0, step, args.batch)
            agent.update(*(torch.from_numpy(buffer[k][idx]) for k in buffer), step)
        bar.update(1)
        if step % args.eval_every == 0:
            returns = evaluate(agent.actor, args.env, args.eval_episodes, 10_000 + step, low, high)
            row = {"steps": step, "mean": float(np.mean(returns)), "std": float(np.std(returns)),
                   "min": float(np.min(returns)), "seconds": time.time() - t0}  # fmt: skip
            if row["mean"] > best:
                best = row["mean"]
                layers = [m for m in agent.actor if isinstance(m, nn.Linear)]
                expert = MLPExpert([od, *(m.out_features for m in layers)], low, high, args.env,
                                   {"source": "scripts/train_expert.py (TD3)", "eval": row,
                                    "args": vars(args)})  # fmt: skip
                expert.layers.load_state_dict(nn.ModuleList(layers).state_dict())
                expert.save(out / "best.safetensors")
            extra = {"best": best, "episode": episode, "numpy_rng": rng.bit_generator.state,
                     "torch_rng": torch.get_rng_state()}  # fmt: skip
            save_state(out / "state.pt", agent, buffer, step, extra)
            with open(out / "evals.jsonl", "a") as f:
                f.write(json.dumps(row) + "\n")
            bar.write(json.dumps(row))


if __name__ == "__main__":
    main()
