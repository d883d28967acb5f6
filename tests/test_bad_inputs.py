"""Every bad input of the hardening issue, through the command line: a one-line error that names
the problem, exit code 2, no traceback, and no new or half-written file."""

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from cfcclone import ConvCfC, PolicyConfig
from cfcclone.checkpoint import read_config, save_policy
from cfcclone.cli import main
from cfcclone.data.format import list_shards
from cfcclone.envs import EnvConfig

SHORT = EnvConfig(max_episode_frames=400)


def _tree(root: Path) -> dict:
    return {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*") if p.is_file()}


def cli(args) -> int:
    return main([str(a) for a in args])


def refused(capsys, args, match, root: Path | None = None):
    """Run the CLI; assert exit 2, one line on stderr matching `match`, and no file changed."""
    before = _tree(root) if root else None
    assert cli(args) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err, err
    last = err.splitlines()[-1]  # progress bars may come before it, on their own lines
    assert last.startswith(f"cfcclone {args[0]}: error: ") and err.count("error:") == 1, err
    assert re.search(match, last), err
    if root is not None:
        assert _tree(root) == before


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "p.safetensors"
    torch.manual_seed(0)
    save_policy(path, ConvCfC(PolicyConfig(n_actions=4, encoder="nature", units=8)), SHORT)
    return path


def _bad_ckpt(ckpt, tmp_path, change) -> Path:
    config = read_config(ckpt)
    new = change(config)
    config = new if isinstance(new, list) else config  # a change that replaces the whole
    from safetensors.torch import load_file

    out = tmp_path / "bad.safetensors"
    save_file(load_file(str(ckpt)), out, metadata={"cfcclone": json.dumps(config)})
    return out


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda c: c.pop("policy"), "policy: expected a JSON object"),
        (lambda c: c.pop("env"), "env: expected a JSON object"),
        (lambda c: c["policy"].pop("n_actions"), "n_actions"),
        (lambda c: c["policy"].update(units="64"), r"policy.units: expected int, got '64'"),
        (lambda c: [1, 2], "expected format cfcclone-policy v1, got"),
        (lambda c: c["env"].update(stack=0), "expected stack >= 1, got 0"),
        (lambda c: c["env"].update(screen_size=-5), "expected screen_size >= 1, got -5"),
        (lambda c: c["policy"].update(n_actions=2.5), r"policy.n_actions: expected int, got 2.5"),
    ],
)
def test_bad_checkpoint_metadata(ckpt, tmp_path, capsys, change, match):
    bad = _bad_ckpt(ckpt, tmp_path, change)
    refused(capsys, ["eval", bad, "--episodes", "1"], f"bad.safetensors: .*{match}", tmp_path)


def test_bad_configs_are_refused_when_built():
    with pytest.raises(ValueError, match="expected units >= 1, got 0"):
        PolicyConfig(units=0)
    with pytest.raises(ValueError, match=r"expected sticky_actions in \[0, 1\], got 2.0"):
        EnvConfig(sticky_actions=2.0)
    with pytest.raises(ValueError, match="expected n_actions >= 0, got 2.5"):
        PolicyConfig(n_actions=2.5)


@pytest.fixture
def data(follower_data, tmp_path):
    """A copy of the follower's dataset to damage."""
    return Path(shutil.copytree(follower_data, tmp_path / "data"))


def _flip(path: Path, offset: int = -1) -> None:
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 0xFF
    path.write_bytes(bytes(raw))


def _train(data, tmp_path, *extra):
    small = ["--units", "8", "--seq-len", "8", "--batch", "2", "--batches-per-epoch", "1"]
    run = ["--data", data, "--out", tmp_path / "run", "--eval-episodes", "0"]
    return ["train", *run, *small, *extra]


def test_flipped_actions_and_frames(data, tmp_path, capsys):
    shard = list_shards(data)[0]
    _flip(shard / "actions.npy")
    refused(capsys, _train(data, tmp_path), "actions.npy: checksum mismatch")
    refused(capsys, ["stats", data], "actions.npy: checksum mismatch")
    assert not (tmp_path / "run").exists()
    _flip(shard / "actions.npy")  # restored
    _flip(list_shards(data)[1] / "frames.npy", 2000)
    refused(capsys, _train(data, tmp_path, "--verify"), "frames.npy: checksum mismatch")
    refused(capsys, ["stats", data, "--verify"], "1 bad shards; cfcclone stats --repair")


def test_a_corrupt_npy_header(data, tmp_path, capsys):
    frames = list_shards(data)[0] / "actions.npy"
    raw = frames.read_bytes()
    frames.write_bytes(raw[:10] + b"{'descr': '<u1', 'fortran_order': False, 'sha" + raw[56:])
    meta = json.loads((frames.parent / "meta.json").read_text())
    from cfcclone.data.format import sha256

    meta["sha256"]["actions"] = sha256(frames)  # a header broken before it was checksummed
    (frames.parent / "meta.json").write_text(json.dumps(meta))
    refused(capsys, ["stats", data], "actions.npy: unreadable array")
    refused(capsys, _train(data, tmp_path), "actions.npy: unreadable array")


@pytest.mark.parametrize(
    "change, match",
    [
        (
            lambda m: {k: v for k, v in m.items() if k != "action_meanings"},
            r"missing fields \['action_meanings'\]",
        ),
        (lambda m: {k: v for k, v in m.items() if k != "env"}, r"missing fields \['env'\]"),
        (lambda m: [m], "expected a JSON object, got list"),
    ],
)
def test_bad_manifests(data, capsys, change, match):
    path = data / "manifest.json"
    path.write_text(json.dumps(change(json.loads(path.read_text()))))
    refused(capsys, ["stats", data], f"manifest.json: .*{match}", data)


def test_a_foreign_shard_is_not_read_and_repair_drops_it(data, tmp_path, capsys):
    from cfcclone.data import collect

    pong = tmp_path / "pong"
    collect(pong, "pong", "planner", 200, envs=1, progress=False, max_episode_frames=400)
    steps = json.loads((data / "manifest.json").read_text())["steps"]
    shutil.copytree(list_shards(pong)[0], data / "shards" / "zz-pong")
    with pytest.warns(UserWarning, match="1 shard folders the manifest does not list"):
        assert cli(["stats", data, "--json"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["steps"] == steps
    assert cli(["stats", data, "--repair"]) == 0
    out = capsys.readouterr().out
    assert "dropped zz-pong:" in out and "a pong shard in a breakout dataset" in out


def test_a_lost_manifest_is_rebuilt(data, capsys):
    before = json.loads((data / "manifest.json").read_text())
    (data / "manifest.json").unlink()
    refused(capsys, ["stats", data, "--repair"], "the manifest is lost or unreadable; pass --game")
    assert cli(["stats", data, "--repair", "--game", "breakout"]) == 0
    after = json.loads((data / "manifest.json").read_text())
    assert after["shards"] == before["shards"] and after["steps"] == before["steps"]
    assert after["expert"] == "unknown"  # what the shards do not say is not made up


def test_bad_training_options(data, tmp_path, capsys):
    for option, value, match in [
        ("--epochs", 0, "expected epochs >= 1, got 0"),
        ("--epochs", -1, "expected epochs >= 1, got -1"),
        ("--batch", 0, "expected batch >= 1, got 0"),
        ("--batches-per-epoch", -3, "expected batches_per_epoch >= 0, got -3"),
        ("--device", "tpu", "unknown device 'tpu'"),
    ]:
        refused(capsys, [*_train(data, tmp_path), option, value], match, tmp_path)
    assert not (tmp_path / "run").exists()


def test_eval_devices_and_games(ckpt, capsys):
    if not torch.cuda.is_available():
        args = ["eval", ckpt, "--episodes", "1", "--device", "cuda"]
        refused(capsys, args, "torch sees no CUDA device")
        assert cli(["eval", ckpt, "--episodes", "1", "--envs", "1", "--device", "auto"]) == 0
    refused(capsys, ["eval", ckpt, "--game", "pong"], "plays breakout, not pong")


def test_bad_experts_are_refused_before_anything_is_written(tmp_path, capsys):
    out = tmp_path / "d"
    args = ["collect", "--out", out, "--frames", "100", "--envs", "1"]
    refused(capsys, [*args, "--expert", "nosuchmod:fn"], "cannot import expert 'nosuchmod:fn'")
    refused(capsys, [*args, "--expert", "planner", "--game", "tennis"], "no planner for 'tennis'")
    refused(capsys, [*args, "--envs", "100000"], "use at most --envs")
    refused(capsys, [*args, "--screen-size", "0"], "expected screen_size >= 1, got 0")
    refused(capsys, [*args, "--sticky-actions", "1.5"], "expected sticky_actions in \\[0, 1\\]")
    assert not out.exists()


def test_a_callable_in_the_working_directory_and_a_bad_return(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = "def fn(obs, info):\n    return 1\n\n\ndef bad(obs, info):\n    return 2.7\n"
    (tmp_path / "myexp.py").write_text(code)
    args = ["collect", "--frames", "40", "--envs", "1", "--game", "breakout"]
    assert cli([*args, "--out", "good", "--expert", "myexp:fn"]) == 0
    capsys.readouterr()
    refused(capsys, [*args, "--out", "bad", "--expert", "myexp:bad"], r"returned 2\.7 \(float\)")
    assert not (tmp_path / "bad").exists()  # nothing finished: nothing left behind


def test_resume_with_another_model_or_data_is_refused(data, tmp_path, capsys):
    assert cli(_train(data, tmp_path, "--epochs", "1")) == 0
    run = tmp_path / "run"
    refused(
        capsys,
        ["train", "--out", run, "--resume", "--encoder", "impala"],
        "cannot resume .* with --encoder impala: the run trains nature",
        run,
    )
    other = Path(shutil.copytree(data, tmp_path / "other"))
    refused(
        capsys,
        ["train", "--out", run, "--resume", "--data", other],
        "cannot resume .* start a new run with --init",
        run,
    )
    refused(capsys, ["train", "--out", tmp_path / "none", "--resume"], "nothing to resume")


def test_ctrl_c_in_train_exits_130_with_one_line(data, tmp_path, capsys, monkeypatch):
    from cfcclone.training import Trainer

    def interrupted(self, on_epoch=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "fit", interrupted)
    assert cli(_train(data, tmp_path)) == 130
    err = capsys.readouterr().err.strip()
    assert err == (
        "cfcclone train: interrupted: the last finished epoch is kept; "
        "rerun with --resume to continue"
    )


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
def test_killing_the_collect_parent_kills_its_workers_and_resume_completes(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    from cfcclone.data import collect

    same = dict(
        game="breakout",
        expert="cfcclone.experts.follower:follow_ball",
        frames=900,
        envs=2,
        seed=5,
        max_episode_frames=1200,
    )
    collect(tmp_path / "whole", **same, progress=False)
    code = f"from cfcclone.data import collect; collect({str(tmp_path / 'cut')!r}, **{same!r})"
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.DEVNULL)
    deadline, workers = time.time() + 120, []
    while time.time() < deadline and not list_shards(tmp_path / "cut"):
        workers = [c for c in _children(proc.pid) if c not in workers] or workers
        time.sleep(0.05)
    workers = [w for w in _children(proc.pid)]
    assert workers, "no worker process was seen"
    os.kill(proc.pid, signal.SIGKILL)  # the parent only
    proc.wait()
    deadline = time.time() + 10
    while any(_alive(w) for w in workers) and time.time() < deadline:
        time.sleep(0.05)
    assert not any(_alive(w) for w in workers), "a worker outlived its parent"
    collect(tmp_path / "cut", **same, resume=True, progress=False)
    a, b = list_shards(tmp_path / "whole"), list_shards(tmp_path / "cut")
    assert [p.name for p in a] == [p.name for p in b]
    for pa, pb in zip(a, b, strict=True):
        for name in ("frames.npy", "actions.npy", "rewards.npy"):
            assert (pa / name).read_bytes() == (pb / name).read_bytes()


def test_a_full_disk_stops_training_and_resume_completes(data, tmp_path, capsys, monkeypatch):
    import errno

    import cfcclone.checkpoint as checkpoint

    args = _train(data, tmp_path, "--epochs", "2")
    straight = tmp_path / "straight"
    assert cli([*args[:4], straight, *args[5:]]) == 0
    real, calls = checkpoint.save_file, []

    def full_disk(*a, **kw):
        calls.append(a[1])
        if len(calls) > 3:  # epoch 1 writes last, best and the state; epoch 2 fails
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*a, **kw)

    monkeypatch.setattr(checkpoint, "save_file", full_disk)
    refused(capsys, args, "No space left on device.* rerun with --resume")
    monkeypatch.setattr(checkpoint, "save_file", real)
    assert cli(["train", "--out", tmp_path / "run", "--resume"]) == 0
    from cfcclone import load_policy

    a = load_policy(straight / "last.safetensors").policy.state_dict()
    b = load_policy(tmp_path / "run" / "last.safetensors").policy.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_every_file_a_run_writes_goes_through_the_one_writer(tmp_path, capsys, monkeypatch):
    import os

    renamed = []
    real = os.replace

    def replace(src, dst, *a, **kw):
        renamed.append(Path(dst))
        return real(src, dst, *a, **kw)

    monkeypatch.setattr(os, "replace", replace)
    data, run = tmp_path / "data", tmp_path / "run"
    from cfcclone.data import collect
    from cfcclone.experts.follower import follow_ball

    collect(data, "breakout", follow_ball, 600, envs=1, progress=False)  # in this process
    assert (
        cli(_train(data, tmp_path, "--epochs", "1", "--eval-episodes", "1", "--eval-envs", "1"))
        == 0
    )
    assert (
        cli(
            [
                "eval",
                run / "best.safetensors",
                "--episodes",
                "1",
                "--envs",
                "1",
                "--json",
                tmp_path / "eval.json",
            ]
        )
        == 0
    )
    assert (
        cli(["play", run / "best.safetensors", "--record", tmp_path / "a.gif", "--max-steps", "10"])
        == 0
    )
    pytest.importorskip("matplotlib")
    assert cli(["plot", run]) == 0
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(written) > 10
    for path in written:  # each file was renamed into place, itself or in its folder
        assert any(path == r or r in path.parents for r in renamed), path


# The second pass: the edges between commands (issue "Hardening, second pass"; rows by number)


def test_a_folder_where_a_file_goes_is_refused_before_any_work(ckpt, tmp_path, capsys,
                                                               monkeypatch):  # fmt: skip
    import cfcclone.evaluation

    def no_work(*a, **kw):
        raise AssertionError("the evaluation ran before the output path was checked")

    monkeypatch.setattr(cfcclone.evaluation, "evaluate_policy", no_work)
    for name in ("d.onnx", "res.json", "rec.gif"):
        (tmp_path / name).mkdir()
    refused(capsys, ["export", ckpt, "--out", tmp_path / "d.onnx"], "d.onnx is a folder", tmp_path)
    refused(capsys, ["eval", ckpt, "--json", tmp_path / "res.json"], "res.json is a folder",
            tmp_path)  # row 2  # fmt: skip
    refused(capsys, ["play", ckpt, "--record", tmp_path / "rec.gif"], "rec.gif is a folder",
            tmp_path)  # row 3  # fmt: skip
    (tmp_path / "file").write_text("")
    refused(capsys, ["eval", ckpt, "--json", tmp_path / "file" / "r.json"],
            "file is a file, not a folder", tmp_path)  # fmt: skip


def test_a_frame_too_small_for_the_encoder_is_refused_by_name(tmp_path, capsys):  # row 4
    data = tmp_path / "d"
    args = ["collect", "--out", data, "--frames", "40", "--envs", "1", "--screen-size", "7"]
    assert cli([*args, "--expert", "tracker", "--max-episode-frames", "80"]) == 0
    capsys.readouterr()
    run = ["train", "--data", data, "--out", tmp_path / "run", "--seq-len", "4", "--batch", "2",
           "--batches-per-epoch", "1", "--epochs", "1", "--eval-episodes", "0",
           "--units", "8"]  # fmt: skip
    refused(capsys, [*run, "--encoder", "nature"],
            "encoder nature takes frames of at least 36x36 pixels, got 7")  # fmt: skip
    assert not (tmp_path / "run").exists()
    assert cli([*run, "--encoder", "impala"]) == 0  # the padded encoders take any frame


def _dagger_run(data, out: Path, rounds_done: int = 1, rounds: int = 2) -> Path:
    """The folder of a DAgger run with `rounds_done` rounds (its state, its data)."""
    from cfcclone.dagger import STATE, DaggerConfig, default_recipe

    config = DaggerConfig(init=str(data), out=str(out), expert="tracker", rounds=rounds,
                          train=default_recipe(str(data)))  # fmt: skip
    shutil.copytree(data, out / "data")
    state = {"config": config.to_dict(), "rounds_done": rounds_done, "labels": 900,
             "student": "round01/best.safetensors"}  # fmt: skip
    (out / STATE).write_text(json.dumps(state))
    (out / "metrics.jsonl").write_text(json.dumps({"round": 1, "labels": 900}) + "\n")
    return out


def test_train_and_dagger_runs_are_not_mixed(data, tmp_path, capsys):  # rows 5, 6, 7
    assert cli(_train(data, tmp_path, "--epochs", "1")) == 0
    train_run = tmp_path / "run"
    refused(capsys, ["dagger", "--resume", "--out", train_run, "--init", data],
            "holds a train run, not a DAgger run", train_run)  # fmt: skip
    dagger_run = _dagger_run(data, tmp_path / "dagger")
    refused(capsys, [*_train(data, tmp_path)[:4], dagger_run, *_train(data, tmp_path)[5:]],
            "holds a DAgger run, not a train run", dagger_run)  # fmt: skip
    # a folder that holds both kinds of rows still plots (the epochs), and a DAgger run its rounds
    mixed = dagger_run / "metrics.jsonl"
    mixed.write_text(mixed.read_text() + (train_run / "metrics.jsonl").read_text())
    pytest.importorskip("matplotlib")
    capsys.readouterr()
    assert cli(["plot", dagger_run, "--out", tmp_path / "mixed.png"]) == 0
    assert (tmp_path / "mixed.png").stat().st_size > 0


def test_dagger_resume_keeps_its_stored_options(data, tmp_path, capsys):  # weak rows
    run = _dagger_run(data, tmp_path / "dagger", rounds_done=2, rounds=2)
    refused(capsys, ["dagger", "--resume", "--out", run, "--expert", "planner"],
            "cannot resume .* with --expert planner: the run has tracker", run)  # fmt: skip
    refused(capsys, ["dagger", "--resume", "--out", run, "--lr", "0.5"],
            "cannot resume .* with --lr 0.5: the run has 0.0001", run)  # fmt: skip
    refused(capsys, ["dagger", "--resume", "--out", run, "--rounds", "1"],
            "with --rounds 1: 2 rounds are done", run)  # fmt: skip
    before = _tree(run)
    assert cli(["dagger", "--resume", "--out", run, "--expert", "tracker"]) == 0  # no --init
    assert "all 2 rounds are done; --rounds N adds more" in capsys.readouterr().out
    assert _tree(run) == before
    refused(capsys, ["dagger", "--out", tmp_path / "new"], "required: --init")


def test_a_repair_for_the_wrong_game_writes_nothing(data, capsys):  # row 8
    (data / "manifest.json").unlink()
    message = "none of its 4 shards is an intact pong shard, so nothing was written"
    refused(capsys, ["stats", data, "--repair", "--game", "pong"], message, data)
    assert cli(["stats", data, "--repair", "--game", "breakout"]) == 0


@pytest.mark.parametrize("line", ["[1, 2]", "7", '"text"', "{broken"])
def test_a_metrics_line_that_is_not_an_object_is_named(tmp_path, capsys, line):  # row 11
    pytest.importorskip("matplotlib")
    (tmp_path / "metrics.jsonl").write_text('{"epoch": 1, "val_loss": 1.0}\n' + line + "\n")
    refused(capsys, ["plot", tmp_path], "metrics.jsonl, line 2: ", tmp_path)


def test_an_unguarded_script_is_told_to_add_the_main_guard(tmp_path):  # row 12
    import subprocess
    import sys

    call = "collect('d', 'breakout', 'tracker', frames=100, envs=2, progress=False)"
    script = tmp_path / "quick.py"
    for text, ok in [(f"{call}\n", False), (f"if __name__ == '__main__':\n    {call}\n", True)]:
        script.write_text("from cfcclone import collect\n\n" + text)
        done = subprocess.run([sys.executable, script.name], cwd=tmp_path, capture_output=True,
                              text=True, timeout=300)  # fmt: skip
        assert (done.returncode == 0) == ok, done.stderr
        assert (tmp_path / "d" / "manifest.json").exists() == ok
        if not ok:
            last = done.stderr.strip().splitlines()[-1]
            assert 'has no `if __name__ == "__main__":` guard' in last, done.stderr


@pytest.mark.parametrize("point", ["before the row", "between the row and the state", "after"])
def test_an_interrupt_anywhere_in_an_epochs_writes_loses_no_row(
    data, tmp_path, capsys, monkeypatch, point
):  # row 9
    import cfcclone.training.trainer as trainer

    args = _train(data, tmp_path, "--epochs", "3")
    straight = tmp_path / "straight"
    assert cli([*args[:4], straight, *args[5:]]) == 0
    real_row, real_state, epochs = trainer.append_line, trainer.save_train_state, []

    def row(path, line):  # epoch 2's row: the fault comes before or after it
        epochs.append(json.loads(line)["epoch"])
        if epochs[-1] == 2 and point == "before the row":
            raise KeyboardInterrupt
        real_row(path, line)

    def state(path, *a):
        if epochs[-1] == 2 and point == "between the row and the state":
            raise KeyboardInterrupt
        real_state(path, *a)
        if epochs[-1] == 2 and point == "after":
            raise KeyboardInterrupt

    monkeypatch.setattr(trainer, "append_line", row)
    monkeypatch.setattr(trainer, "save_train_state", state)
    assert cli(args) == 130
    monkeypatch.setattr(trainer, "append_line", real_row)
    monkeypatch.setattr(trainer, "save_train_state", real_state)
    assert cli(["train", "--out", tmp_path / "run", "--resume"]) == 0
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    want = [json.loads(x) for x in (straight / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    drop = ("train_frames_per_s", "eval_steps_per_s")  # timings differ between the runs
    assert [{k: v for k, v in r.items() if k not in drop} for r in rows] == [
        {k: v for k, v in r.items() if k not in drop} for r in want
    ]


def test_a_row_lost_by_an_older_run_is_restored_on_resume(data, tmp_path):  # row 9
    assert cli(_train(data, tmp_path, "--epochs", "2")) == 0
    metrics = tmp_path / "run" / "metrics.jsonl"
    rows = metrics.read_text().splitlines()
    metrics.write_text(rows[0] + "\n")  # the state holds epoch 2, the metrics lack its row
    with pytest.warns(UserWarning, match="epoch 2's row was lost; restored it"):
        assert cli(["train", "--out", tmp_path / "run", "--resume", "--epochs", "3"]) == 0
    back = [json.loads(x) for x in metrics.read_text().splitlines()]
    assert [r["epoch"] for r in back] == [1, 2, 3]
    assert back[1] == {k: v for k, v in json.loads(rows[1]).items() if k != "returns"}


def test_a_run_that_never_finished_an_epoch_leaves_no_folder(data, tmp_path, capsys,
                                                            monkeypatch):  # fmt: skip
    from cfcclone.training import Trainer

    refused(capsys, [*_train(data, tmp_path), "--seq-len", "5000"], "no train episode has 5000")
    assert not (tmp_path / "run").exists()

    def interrupted(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "train_epoch", interrupted)
    assert cli(_train(data, tmp_path)) == 130
    assert not (tmp_path / "run").exists()
