"""The main job on tiny settings: it runs end to end, its figures can be rerun, and it says
when the clone is weak."""

import dataclasses
import json

import pytest

from cfcclone import SequenceDataset, evaluate_expert, evaluate_policy, load_policy
from cfcclone.demo import DEMO_RECIPE, DemoConfig, run_demo
from cfcclone.envs import EnvConfig

pytestmark = pytest.mark.slow


def test_tiny_demo_leaves_a_complete_run_whose_figures_rerun(tmp_path, capsys):
    train = dataclasses.replace(DEMO_RECIPE, epochs=1, batches_per_epoch=2, eval_episodes=0)
    env = EnvConfig(max_episode_frames=2000)
    config = DemoConfig(
        out=str(tmp_path / "demo"),
        frames=600,
        env=env,
        train=train,
        episodes=2,
        envs=2,
        gif_steps=20,
    )
    summary = run_demo(config)
    out = capsys.readouterr().out
    assert "expert" in out and "clone" in out and "clone/expert" in out
    assert "WEAK CLONE" in out  # two batches of training cannot clone the tracker
    demo = tmp_path / "demo"
    assert json.loads((demo / "summary.json").read_text()) == json.loads(json.dumps(summary))
    for name in ("run/best.safetensors", "run/last.safetensors", "run/metrics.jsonl", "clone.gif"):
        assert (demo / name).exists(), name
    # the published figures are what the library's own evaluation gives, by the same seed
    loaded = load_policy(demo / "run" / "best.safetensors")
    clone = evaluate_policy(loaded.policy, env, 2, 2, seed=1)
    expert = evaluate_expert("tracker", env, 2, 2, seed=1)
    assert summary["clone"]["returns"] == clone.returns
    assert summary["expert"]["returns"] == expert.returns
    assert summary["ratio"] == pytest.approx(clone.mean / expert.mean)
    assert loaded.train_config.optim == DEMO_RECIPE.optim  # the run carries its recipe
    # a rerun reuses the data and the finished run
    run_demo(config)
    assert "reusing the expert data" in capsys.readouterr().out


def test_the_hopper_preset_clones_the_shipped_expert_from_its_episodes(tmp_path, monkeypatch):
    """The preset's whole job on tiny settings: 2 expert episodes, a Box clone of state vectors,
    both scored on the same seeds."""
    pytest.importorskip("mujoco")
    from pathlib import Path

    from cfcclone.demo import PRESETS

    monkeypatch.chdir(Path(__file__).resolve().parents[1])  # the preset names checkpoints/...
    preset = PRESETS["hopper"]
    train = dataclasses.replace(preset.train, epochs=1, batches_per_epoch=2, eval_episodes=0)
    config = dataclasses.replace(preset, out=str(tmp_path / "hopper"), episodes_collected=2,
                                 train=train, episodes=2, envs=2, gif_steps=5)  # fmt: skip
    summary = run_demo(config)
    data = SequenceDataset(tmp_path / "hopper" / "data", 1, "all")
    assert data.episodes == 2 and data.manifest.action.kind == "box"
    assert summary["val_mae"] is not None and summary["val_acc"] is None
    expert = evaluate_expert(preset.expert, preset.env, 2, 1, seed=1)
    assert summary["expert"]["returns"] == expert.returns
