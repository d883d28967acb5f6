"""The main job on tiny settings: it runs end to end and says when the clone is weak."""

import json

from cfcclone.demo import DemoConfig, run_demo


def test_tiny_demo_leaves_a_complete_run_folder(tmp_path, capsys):
    config = DemoConfig(
        out=str(tmp_path / "demo"),
        frames=600,
        epochs=1,
        batches_per_epoch=2,
        eval_episodes=2,
        eval_envs=2,
        epoch_eval_episodes=0,
        gif_steps=20,
    )
    summary = run_demo(config)
    out = capsys.readouterr().out
    assert "expert" in out and "clone" in out and "clone/expert" in out
    assert "WEAK CLONE" in out  # two batches of training cannot clone the tracker
    assert summary["ratio"] == summary["clone"]["return_mean"] / summary["expert"]["return_mean"]
    assert summary["expert"]["episodes"] == summary["clone"]["episodes"] == 2
    demo = tmp_path / "demo"
    assert json.loads((demo / "summary.json").read_text())["ratio"] == summary["ratio"]
    for name in ("run/best.safetensors", "run/last.safetensors", "run/metrics.jsonl", "clone.gif"):
        assert (demo / name).exists(), name
