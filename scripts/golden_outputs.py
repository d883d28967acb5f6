"""Golden outputs of the shipped checkpoints: for each policy in checkpoints/, 16 steps it played
(seed 0, its own env) and its outputs on them, in checkpoints/golden/NAME.npz. The tests hold
every checkpoint to its file, so a changed checkpoint, loader or model shows; after replacing a
checkpoint on purpose, rerun this and commit both.

    python scripts/golden_outputs.py            # every checkpoint whose golden file is missing
    python scripts/golden_outputs.py --all      # rewrite them all
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
import torch

from cfcclone import StatefulAgent, load_policy, make_vector_env, rollout
from cfcclone.agent import step_inputs
from cfcclone.atomic import atomic_path
from cfcclone.checkpoint import CheckpointError

ROOT = Path(__file__).resolve().parents[1] / "checkpoints"
STEPS = 16


def record(path: Path) -> dict[str, np.ndarray]:
    """The steps a checkpoint plays from seed 0, and its outputs on them as one sequence."""
    loaded = load_policy(path)
    policy = loaded.policy
    env = make_vector_env(num_envs=1, config=loaded.env_config)
    agent = StatefulAgent.for_env(policy, env)
    obs, starts, prev = [], [], []
    try:
        for t in rollout(env, agent, seed=0):
            obs.append(t.obs[0])
            starts.append(bool(t.episode_start[0]))
            inputs = step_inputs(policy.config, t.info, t.episode_start)
            prev.append(int(inputs.get("prev_action", [-1])[0]))
            if len(obs) == STEPS:
                break
    finally:
        env.close()
    arrays = {
        "obs": np.stack(obs),
        "episode_start": np.array(starts),
        "prev_action": np.array(prev, np.int64),
    }
    arrays["out"] = outputs(policy, arrays)
    return arrays


def outputs(policy, arrays) -> np.ndarray:
    """The policy's outputs (T, n) on a golden file's steps, from a zero state."""
    obs, start, prev = (torch.as_tensor(arrays[k])[None] for k in
                        ("obs", "episode_start", "prev_action"))  # fmt: skip
    with torch.no_grad():
        out, _ = policy(obs, None, start, prev)
    return out[0].numpy()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--all", action="store_true", help="rewrite every golden file")
    args = p.parse_args()
    for path in sorted(ROOT.glob("*.safetensors")):
        target = ROOT / "golden" / f"{path.stem}.npz"
        if target.exists() and not args.all:
            continue
        try:
            arrays = record(path)
        except CheckpointError as e:  # a state expert's file, not a policy
            print(f"{path.name}: skipped ({e})")
            continue
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        with atomic_path(target) as tmp:
            tmp.write_bytes(buffer.getvalue())
        print(f"{target}: {STEPS} steps, out {arrays['out'].shape}")


if __name__ == "__main__":
    main()
