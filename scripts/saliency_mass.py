"""Does a Breakout policy look at the ball and the paddle? The share of its saliency mass in
boxes around them (`cfcclone.saliency.breakout_boxes`) over those boxes' share of the frame, for
a checkpoint and for a randomly initialised policy of the same config, by VisualBackProp and by
gradient, over the same steps of one env.

    python scripts/saliency_mass.py checkpoints/breakout_nature.safetensors --steps 500 --seed 1
"""

from __future__ import annotations

import argparse
import json

import torch

from cfcclone import ConvCfC, load_policy
from cfcclone.saliency import breakout_boxes, object_mass, rollout_saliency


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", help="a Breakout checkpoint (.safetensors)")
    p.add_argument("--steps", type=int, default=500, help="steps of one env (episodes restart)")
    p.add_argument("--seed", type=int, default=1, help="the env's reset seed")
    p.add_argument("--json", help="also write the figures to this file")
    args = p.parse_args()
    loaded = load_policy(args.checkpoint)
    if loaded.env_config.game != "breakout":
        p.error(f"{args.checkpoint} plays {loaded.env_config.game}; the boxes are Breakout's")
    torch.manual_seed(0)
    policies = {"checkpoint": loaded.policy, "random init": ConvCfC(loaded.policy.config).eval()}
    rows = []
    print("| policy | method | mass in the boxes | boxes' area | ratio |\n|---|---|---|---|---|")
    for name, policy in policies.items():
        for method in ("vbp", "gradient"):
            run = rollout_saliency(policy, loaded.env_config, args.steps, method, args.seed)
            row = {
                "policy": name,
                "method": method,
                **object_mass(run.maps, breakout_boxes(run.ram)),
            }
            rows.append(row)
            print(f"| {name} | {method} | {row['mass']:.1%} | {row['area']:.1%} | "
                  f"{row['ratio']:.2f} |")  # fmt: skip
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
