"""The command line end to end: collect, stats, train, eval, play --record, plot."""

import json

import numpy as np
import pytest
from PIL import Image

from cfcclone.cli import main


@pytest.mark.slow
def test_tiny_end_to_end_run(tmp_path, capsys):
    data, run = tmp_path / "data", tmp_path / "run"
    assert (
        main(
            [
                "collect",
                "--game",
                "breakout",
                "--expert",
                "cfcclone.experts.follower:follow_ball",
                "--frames",
                "2000",
                "--envs",
                "2",
                "--out",
                str(data),
            ]
        )
        == 0
    )
    assert "2000 frames" in capsys.readouterr().out
    assert main(["stats", str(data), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert stats["steps"] == 2000 and sum(stats["actions"].values()) == 2000
    assert (
        main(
            [
                "train",
                "--data",
                str(data),
                "--out",
                str(run),
                "--epochs",
                "1",
                "--eval-episodes",
                "2",
                "--eval-envs",
                "2",
                "--lr",
                "1e-3",
            ]
        )
        == 0
    )
    assert (run / "best.safetensors").exists() and (run / "metrics.jsonl").exists()
    capsys.readouterr()
    assert (
        main(
            [
                "eval",
                str(run / "best.safetensors"),
                "--episodes",
                "2",
                "--envs",
                "2",
                "--json",
                str(tmp_path / "eval.json"),
            ]
        )
        == 0
    )
    assert "over 2 episodes" in capsys.readouterr().out
    assert json.loads((tmp_path / "eval.json").read_text())["episodes"] == 2
    gif = tmp_path / "clone.gif"
    assert (
        main(["play", str(run / "best.safetensors"), "--record", str(gif), "--max-steps", "60"])
        == 0
    )
    with Image.open(gif) as im:  # 60 steps, every 2nd recorded; GIF merges repeated frames
        assert im.size == (160, 210) and 1 < im.n_frames <= 30
    pytest.importorskip("matplotlib")
    assert main(["plot", str(run)]) == 0
    assert (run / "curves.png").stat().st_size > 0


def test_errors_are_reported_not_raised(tmp_path, capsys):
    assert main(["stats", str(tmp_path)]) == 2
    assert "no manifest" in capsys.readouterr().err
    assert main(["eval", "--expert", "scripted", "--game", "tennis", "--episodes", "1"]) == 2
    assert "no planner for 'tennis'" in capsys.readouterr().err
    assert main(["play", str(tmp_path / "nope.safetensors"), "--record", "x.gif"]) == 2
    assert "no such checkpoint" in capsys.readouterr().err


@pytest.mark.slow
def test_dagger_command_runs_a_round(tmp_path, capsys):
    from cfcclone import ConvCfC, PolicyConfig
    from cfcclone.checkpoint import save_policy
    from cfcclone.envs import EnvConfig

    init = tmp_path / "student.safetensors"
    policy = ConvCfC(PolicyConfig(n_actions=4, encoder="nature", units=8))
    save_policy(init, policy, EnvConfig(max_episode_frames=400))
    args = ["dagger", "--init", str(init), "--out", str(tmp_path / "d"), "--expert", "tracker"]
    args += ["--rounds", "1", "--labels-per-round", "64", "--envs", "2", "--epochs", "1"]
    args += ["--batches-per-epoch", "1", "--batch", "2", "--seq-len", "8", "--eval-episodes", "0"]
    args += ["--round-eval-episodes", "1", "--eval-envs", "1", "--horizon", "stored"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "round 1: beta 0.50, 64 labels" in out and "student return" in out
    row = json.loads((tmp_path / "d" / "metrics.jsonl").read_text())
    assert row["labels"] == 64 and len(row["returns"]) == 1
    state = json.loads((tmp_path / "d" / "dagger.json").read_text())
    assert state["config"]["train"]["window"]["horizon"] == "stored"
    assert state["config"]["round_eval_episodes"] == 1
    assert state["student"].endswith("round01/best.safetensors")


@pytest.mark.slow
def test_init_and_resume_take_the_stored_recipe(tmp_path, capsys):
    """train --init and dagger start from the checkpoint's TrainConfig, --resume from the run's:
    only what changes is typed."""
    from cfcclone.checkpoint import load_policy
    from cfcclone.data import collect
    from cfcclone.experts.follower import follow_ball

    data, run = tmp_path / "data", tmp_path / "run"
    collect(data, "breakout", follow_ball, 600, envs=1, progress=False, max_episode_frames=800)
    recipe = "--encoder nature --units 8 --seq-len 8 --batch 2 --lr 3e-4 --schedule cosine"
    recipe = [*recipe.split(), "--batches-per-epoch", "2", "--eval-episodes", "0"]
    assert main(["train", "--data", str(data), "--out", str(run), "--epochs", "1", *recipe]) == 0
    first = load_policy(run / "last.safetensors").train_config
    assert first.optim.lr == 3e-4 and first.policy.units == 8 and first.epochs == 1
    assert main(["train", "--out", str(run), "--resume", "--epochs", "2"]) == 0
    resumed = load_policy(run / "last.safetensors")
    assert resumed.epoch == 2 and resumed.train_config.optim == first.optim
    tuned = tmp_path / "tuned"
    init = ["--init", str(run / "best.safetensors"), "--data", str(data), "--out", str(tuned)]
    assert main(["train", *init, "--epochs", "1", "--warmup", "5"]) == 0
    config = load_policy(tuned / "last.safetensors").train_config
    assert config.optim.lr == 3e-4 and config.optim.warmup == 5 and config.window.seq_len == 8
    assert config.init == str(run / "best.safetensors") and config.out == str(tuned)
    args = ["dagger", "--init", str(tuned / "best.safetensors"), "--out", str(tmp_path / "d")]
    args += ["--expert", "cfcclone.experts.follower:follow_ball", "--rounds", "1"]
    args += ["--labels-per-round", "32", "--envs", "1", "--round-eval-episodes", "0"]
    assert main([*args, "--epochs", "1"]) == 0
    state = json.loads((tmp_path / "d" / "dagger.json").read_text())
    assert state["config"]["train"]["optim"] == {**config.optim.to_dict()}
    assert state["config"]["train"]["window"]["seq_len"] == 8
    capsys.readouterr()


@pytest.mark.slow
def test_collect_stores_its_preprocessing_and_train_and_eval_replay_it(tmp_path, capsys):
    """`collect --screen-size 48 --stack 2 ..` writes 48x48 frames in stacks of 2; the model
    trained on them is built for that, and `eval CKPT` plays it with no other flag."""
    from cfcclone.checkpoint import load_policy
    from cfcclone.data.dataset import SequenceDataset

    data, run = tmp_path / "data", tmp_path / "run"
    env = ["--screen-size", "48", "--stack", "2", "--sticky-actions", "0"]
    env += ["--max-episode-frames", "400"]
    follow = "cfcclone.experts.follower:follow_ball"
    args = ["collect", "--out", str(data), "--expert", follow, "--frames", "150", "--envs", "1"]
    assert main([*args, *env]) == 0
    batch = SequenceDataset(data, seq_len=8).sample(2, np.random.default_rng(0))
    assert batch.obs.shape == (2, 8, 2, 48, 48)
    recipe = ["--encoder", "nature", "--units", "8", "--seq-len", "8", "--batch", "2"]
    recipe += ["--batches-per-epoch", "2", "--epochs", "1", "--eval-episodes", "0"]
    assert main(["train", "--data", str(data), "--out", str(run), *recipe]) == 0
    loaded = load_policy(run / "last.safetensors")
    config = loaded.env_config
    assert (config.screen_size, config.stack, config.sticky_actions) == (48, 2, 0.0)
    assert config.max_episode_frames == 400
    assert (loaded.policy.config.screen_size, loaded.policy.config.stack) == (48, 2)
    capsys.readouterr()
    result = tmp_path / "eval.json"
    ckpt = run / "last.safetensors"
    assert main(["eval", str(ckpt), "--episodes", "1", "--envs", "1", "--json", str(result)]) == 0
    assert json.loads(result.read_text())["episodes"] == 1


def test_every_help_is_generated_and_readable(capsys):
    from cfcclone.cli import RUN
    from cfcclone.config import field_docs
    from cfcclone.training import OptimConfig

    for command in RUN:
        with pytest.raises(SystemExit) as done:
            main([command, "--help"])
        text = capsys.readouterr().out
        assert done.value.code == 0 and "usage: cfcclone " + command in text, text
        assert "(default:" in text or "(required)" in text
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert field_docs(OptimConfig)["lr"] in text  # the field's docstring is the help
    assert "--schedule {constant,cosine}" in text  # the Literal's values are the choices
    assert "--cell {cfc,ltc,none}, --core {cfc,ltc,none}" in text  # the second spelling
    for derived in ("--n-actions", "--action-meanings", "--progress"):  # set by cfcclone
        assert derived not in text


def test_options_lay_over_a_stored_config_and_configs_check_themselves(tmp_path, capsys):
    """An option not typed keeps the base config's value (a checkpoint's recipe), and a
    config's own check is reported on one line, not as a usage error."""
    from cfcclone.cli.commands import train_config
    from cfcclone.cli.options import Options, parse
    from cfcclone.training import OptimConfig, TrainConfig

    base = TrainConfig(optim=OptimConfig(lr=3e-4, warmup=7), epochs=5)
    typed = ["--warmup", "9", "--cell", "ltc"]
    config = parse("train", [Options(TrainConfig, name="train", base=base)], typed)["train"]
    assert (config.optim.lr, config.optim.warmup, config.epochs) == (3e-4, 9, 5)
    assert config.policy.core == "ltc" and config.policy.encoder == base.policy.encoder
    with pytest.raises(ValueError, match="expected lr >= 0"):
        train_config(["--out", "x", "--data", "y", "--lr", "-1"])
    assert main(["train", "--out", "x", "--data", "y", "--batch", "0"]) == 2
    assert capsys.readouterr().err == "cfcclone train: error: expected batch >= 1, got 0\n"
    with pytest.raises(SystemExit) as usage:  # not a number: tyro's usage error
        main(["train", "--out", "x", "--lr", "fast"])
    assert usage.value.code == 2 and "--lr" in capsys.readouterr().err


SHIP_TRAIN = """train --data runs/ship/data --out runs/ship/run --encoder nature --lr 1e-3
    --seq-len 16 --batch 16 --batches-per-epoch 300 --epochs 16 --eval-episodes 8 --eval-envs 8
    --class-weights sqrt"""
SHIP_DAGGER_BEFORE = """dagger --init {ckpt} --data runs/ship/data --out runs/ship/dagger
    --expert tracker --rounds 3 --labels-per-round 20000 --beta 0.25 --envs 8 --epochs 2
    --round-eval-episodes 10 --encoder nature --lr 1e-3 --warmup 300 --schedule cosine
    --seq-len 16 --batch 16 --batches-per-epoch 300 --eval-episodes 8 --eval-envs 8
    --class-weights sqrt"""
SHIP_DAGGER = """dagger --init {ckpt} --data runs/ship/data --out runs/ship/dagger
    --expert tracker --rounds 3 --labels-per-round 20000 --beta 0.25 --epochs 2 --warmup 300
    --schedule cosine"""


def test_the_shipped_recipe_is_the_same_in_its_short_form(tmp_path):
    """checkpoints/README.md's DAgger command, shortened by the stored TrainConfig, resolves
    to the config its long form (every flag typed again, as before) gave."""
    from cfcclone import ConvCfC, PolicyConfig
    from cfcclone.checkpoint import save_policy
    from cfcclone.cli.commands import dagger_config, train_config
    from cfcclone.envs import EnvConfig

    def parsed(text):
        return text.format(ckpt=tmp_path / "bc.safetensors").split()[1:]

    _, bc = train_config(parsed(SHIP_TRAIN))
    assert bc.optim.lr == 1e-3 and bc.window.seq_len == 16 and bc.epochs == 16
    policy = ConvCfC(PolicyConfig(n_actions=4, encoder="nature"))
    save_policy(tmp_path / "bc.safetensors", policy, EnvConfig(), 16, None, bc)
    (_, short, _), (_, long, _) = (
        dagger_config(parsed(t)) for t in (SHIP_DAGGER, SHIP_DAGGER_BEFORE)
    )
    assert short == long
    assert short.train.optim.warmup == 300 and short.train.optim.schedule == "cosine"
    assert short.train.epochs == 2 and short.envs == 8 and short.round_eval_episodes == 10


def test_the_top_level_help_imports_no_torch():
    import subprocess
    import sys

    code = ("import sys\nfrom cfcclone.cli import main\ntry:\n    main(['--help'])\n"
            "except SystemExit:\n    pass\nprint('torch' in sys.modules)")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "COMMAND" in done.stdout, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "False"
    assert "train a ConvCfC on a dataset" in done.stdout  # every command is listed


def test_lazy_exports_keep_their_meaning_after_a_submodule_import():
    import cfcclone
    import cfcclone.play  # a submodule named as an export: the name still means the function
    import cfcclone.rollout

    assert callable(cfcclone.rollout) and cfcclone.rollout.__name__ == "rollout"
    assert cfcclone.play.__module__ == "cfcclone.play" and callable(cfcclone.play)
    from cfcclone.data import collect

    assert collect.__module__ == "cfcclone.data.collect" and callable(collect)
    assert set(cfcclone.__all__) <= set(dir(cfcclone))
