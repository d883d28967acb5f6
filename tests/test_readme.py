"""Every code block of the README runs as written, with its sizes made small: the Python blocks
as scripts of their own (as a new user saves and runs them), and the cfcclone lines of the
shell blocks (the Minari set they import is made here, as Minari's MuJoCo sets are made)."""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()

SMALL_PYTHON = [  # (as written, small): only sizes change
    ("frames=100_000", "frames=300"),
    ("epochs=10,", "epochs=1, batches_per_epoch=2, eval_episodes=1, eval_envs=1,"),
    ("episodes=30)", "episodes=1, envs=1)"),
    ("step == 200", "step == 20"),
]
SMALL_SHELL = [
    ("--episodes 25 --frames 25000", "--episodes 2 --frames 60"),
    ("--epochs 12", "--epochs 1"),
    ("--seq-len 32 --batch 32 --batches-per-epoch 100",
     "--seq-len 8 --batch 4 --batches-per-epoch 2 --eval-episodes 1 --eval-envs 1"),
    ("--episodes 30 --envs 10", "--episodes 1 --envs 1"),
    ("--max-steps 300", "--max-steps 4"),
    ("--rounds 3", "--rounds 1 --labels-per-round 300 --round-eval-episodes 0 --epochs 1 "
                   "--batches-per-epoch 2 --eval-episodes 0"),
]  # fmt: skip


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, re.S)


def small(text: str, table) -> str:
    for written, reduced in table:
        text = text.replace(written, reduced)
    return text.replace("checkpoints/", f"{ROOT}/checkpoints/")


def _env(tmp_path) -> dict:
    return {**os.environ, "MINARI_DATASETS_PATH": str(tmp_path / "minari")}


def test_every_size_made_small_is_in_the_readme():
    """A README edit that changes a size must change the table here (else it runs full size)."""
    python, shell = "".join(blocks("python")), "".join(blocks("bash")).replace("\\\n    ", "")
    assert all(written in python for written, _ in SMALL_PYTHON)
    assert all(written in shell for written, _ in SMALL_SHELL)


@pytest.mark.parametrize("k", range(len(blocks("python"))))
def test_each_python_block_runs_as_a_script(tmp_path, k):
    script = tmp_path / f"block{k}.py"
    script.write_text(small(blocks("python")[k], SMALL_PYTHON))
    done = subprocess.run([sys.executable, script.name], cwd=tmp_path, capture_output=True,
                          text=True, timeout=900)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]


def test_the_shell_blocks_cfcclone_lines_run(tmp_path):
    minari = pytest.importorskip("minari")
    import gymnasium as gym

    os.environ.setdefault("MUJOCO_GL", "egl")
    env = _env(tmp_path)
    # the Minari set the README imports, made as Minari makes its MuJoCo sets (here: 2 short
    # episodes of random actions)
    os.environ["MINARI_DATASETS_PATH"] = env["MINARI_DATASETS_PATH"]
    collector = minari.DataCollector(gym.make("Hopper-v5", max_episode_steps=30))
    collector.action_space.seed(0)
    for seed in (0, 1):
        collector.reset(seed=seed)
        done = False
        while not done:
            *_, terminated, truncated, _ = collector.step(collector.action_space.sample())
            done = terminated or truncated
    with pytest.warns(UserWarning):
        collector.create_dataset("mujoco/hopper/expert-v0", algorithm_name="random")
    collector.close()
    lines = []
    for block in blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            command = line.split("#", 1)[0].strip()
            if command.startswith("cfcclone "):
                lines.append(small(command, SMALL_SHELL))
    assert lines, "the README has no cfcclone line"
    cli = [sys.executable, "-m", "cfcclone"]
    for line in lines:
        done = subprocess.run(cli + shlex.split(line)[1:], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=900)  # fmt: skip
        assert done.returncode == 0, f"{line}\n{done.stderr[-3000:]}"
