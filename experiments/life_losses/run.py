"""Where in the game are the lives lost? The score and step at each life lost, per episode, for
a checkpoint or a RAM expert.

The games are those of `cfcclone eval` with the same --episodes, --envs and --seed (the quota
rule of `cfcclone.evaluation.run_episodes`: env i keeps its first quota episodes), so the last
entry of each episode is its return. Prints how many lives were lost in each band of score.

    python experiments/life_losses/run.py checkpoints/breakout_planner_nature.safetensors --episodes 30
    python experiments/life_losses/run.py --expert planner --episodes 30
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from tqdm.auto import tqdm

from cfcclone.atomic import atomic_write_text
from cfcclone.evaluation import episode_quotas
from cfcclone.rollout import EpisodeTally, rollout
from cfcclone.vector_env import make_vector_env

BANDS = (0, 100, 200, 300, 400, 432, 500, 600, 700, 865)
"""Score bands; a Breakout wall is worth 432, two walls 864."""


class LifeLosses:
    """Consumes rollout Transitions; `episodes[k]` lists (score, step) at each life lost in the
    k-th kept episode, the last entry at the episode's end (the return and length)."""

    def __init__(self, num_envs: int, episodes: int):
        self.quota = episode_quotas(episodes, num_envs)
        self.kept = np.zeros(num_envs, dtype=np.int64)
        self.tally = EpisodeTally(num_envs)  # the running score and step of each env's episode
        self.lives = np.full(num_envs, -1, dtype=np.int64)
        self.current: list[list[tuple[float, int]]] = [[] for _ in range(num_envs)]
        self.episodes: list[list[tuple[float, int]]] = []

    @property
    def done(self) -> bool:
        return bool(np.all(self.kept >= self.quota))

    def update(self, t) -> int:
        """Take one Transition; returns how many episodes it kept."""
        for k, i in enumerate(t.env_ids):
            lives = int(t.info["lives"][k])  # the lives the actor saw: a loss shows a step late
            if t.episode_start[k]:
                self.current[i] = []
            elif lives < self.lives[i]:
                self.current[i].append((float(self.tally.ret[i]), int(self.tally.length[i])))
            self.lives[i] = lives
        kept = 0
        for i, ret, length in self.tally.update(t):
            self.current[i].append((ret, length))
            if self.kept[i] < self.quota[i]:
                self.episodes.append(self.current[i])
                self.kept[i] += 1
                kept += 1
        return kept

    def histogram(self, bands=BANDS) -> np.ndarray:
        """Lives lost per score band (the episode's end counts as its last life lost)."""
        scores = [s for episode in self.episodes for s, _ in episode]
        return np.histogram(scores, bins=bands)[0]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint", nargs="?", help="a checkpoint (.safetensors)")
    ap.add_argument("--expert", choices=["planner", "tracker"], help="score a RAM expert instead")
    ap.add_argument("--game", default="breakout", help="the expert's game")
    ap.add_argument("--episodes", type=int, default=30)
    ap.add_argument("--envs", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="write the episodes' life losses here")
    args = ap.parse_args(argv)
    if (args.checkpoint is None) == (args.expert is None):
        ap.error("give a checkpoint or --expert, not both")
    n = min(args.envs, args.episodes)
    if args.expert:
        from cfcclone.envs import EnvConfig
        from cfcclone.experts import make_expert

        config = EnvConfig(game=args.game)
        env = make_vector_env(num_envs=n, batch_size=n, config=config, ram=True)
        actor = make_expert(args.expert, args.game, num_envs=n)
    else:
        from cfcclone.checkpoint import load_policy
        from cfcclone.runtime import make_agent

        loaded = load_policy(args.checkpoint)
        env = make_vector_env(num_envs=n, batch_size=n, config=loaded.env_config)
        actor = make_agent(loaded.policy, n)
    tally = LifeLosses(n, args.episodes)
    try:
        with tqdm(total=args.episodes, desc="episodes", unit="ep") as bar:
            for t in rollout(env, actor, args.seed):
                bar.update(tally.update(t))
                if tally.done:
                    break
    finally:
        env.close()
    returns = [episode[-1][0] for episode in tally.episodes]
    print(f"return {np.mean(returns):.1f} ± {np.std(returns):.1f} over {len(returns)} episodes")
    counts = tally.histogram()
    for lo, hi, c in zip(BANDS[:-1], BANDS[1:], counts, strict=True):
        print(f"score {lo:>3} to {hi:>3}: {c:>3} lives lost ({c / counts.sum():.0%})")
    if args.json:
        atomic_write_text(args.json, json.dumps({"episodes": tally.episodes}, indent=1))


if __name__ == "__main__":
    main()
