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
