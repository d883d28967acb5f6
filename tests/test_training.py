"""Trainer: exact resume, NaN handling, class weights, metrics."""

import json

import numpy as np
import pytest
import torch

from cfcclone.bench import follow_ball
from cfcclone.checkpoint import load_policy
from cfcclone.data import collect
from cfcclone.training import TrainConfig, Trainer, TrainingError, class_weights


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("train") / "ds"
    collect(
        out,
        "breakout",
        follow_ball,
        frames=900,
        envs=1,
        seed=1,
        progress=False,
        max_episode_frames=1200,
    )
    return out


def _config(data, out, **kw):
    base = dict(
        data=str(data),
        out=str(out),
        encoder="nature",
        units=8,
        seq_len=8,
        batch=4,
        lr=1e-3,
        epochs=2,
        batches_per_epoch=3,
        eval_episodes=0,
        progress=False,
    )
    return TrainConfig(**{**base, **kw})


def _optimizer_tensors(trainer):
    state = trainer.optimizer.state_dict()["state"]
    return {(i, name): v for i, s in state.items() for name, v in s.items()}


def test_resume_continues_with_identical_state(data, tmp_path):
    straight = Trainer(_config(data, tmp_path / "a", epochs=3))
    straight.fit()
    first = Trainer(_config(data, tmp_path / "b", epochs=2))
    first.fit()
    snapshot = {k: t.clone() for k, t in _optimizer_tensors(first).items()}
    del first  # "killed" after epoch 2
    resumed = Trainer(_config(data, tmp_path / "b", epochs=3), resume=True)
    assert resumed.epoch == 2
    restored = _optimizer_tensors(resumed)
    assert snapshot.keys() == restored.keys() and len(snapshot) > 0
    assert all(torch.equal(snapshot[k], restored[k]) for k in snapshot)
    resumed.fit()
    a, b = straight.policy.state_dict(), resumed.policy.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed run diverged from a straight run"
    rows = [json.loads(r) for r in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]


def test_a_second_run_into_the_same_folder_is_refused(data, tmp_path):
    Trainer(_config(data, tmp_path / "run", epochs=1)).fit()
    with pytest.raises(FileExistsError, match="pass --resume"):
        Trainer(_config(data, tmp_path / "run", epochs=1))
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        Trainer(_config(data, tmp_path / "empty"), resume=True)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(data, tmp_path):
    trainer = Trainer(_config(data, tmp_path / "run", epochs=1))
    trainer.fit()
    good = {k: v.clone() for k, v in trainer.policy.state_dict().items()}
    with torch.no_grad():
        trainer.policy.rnn.fc.weight.fill_(float("nan"))
    trainer.config.epochs = 2
    with pytest.raises(TrainingError, match=r"loss became nan in epoch 2.*from epoch 1"):
        trainer.fit()
    kept = load_policy(tmp_path / "run" / "last.safetensors").state_dict()
    assert all(torch.equal(kept[k], good[k]) for k in good)


def test_metrics_and_checkpoints_are_written(data, tmp_path):
    Trainer(_config(data, tmp_path / "run", epochs=1, eval_episodes=1, eval_envs=1)).fit()
    row = json.loads((tmp_path / "run" / "metrics.jsonl").read_text())
    assert {"train_loss", "val_loss", "val_acc", "return_mean", "returns"} <= row.keys()
    assert len(row["returns"]) == 1 and 0 <= row["val_acc"] <= 1
    best = load_policy(tmp_path / "run" / "best.safetensors")
    assert best.config.action_meanings == ["NOOP", "FIRE", "RIGHT", "LEFT"]


def test_class_weights():
    counts = np.array([100, 1, 50, 49])
    assert class_weights(counts, "none") is None
    w = class_weights(counts, "balanced")
    assert w.argmax() == 1 and w.argmin() == 0 and torch.isclose(w.mean(), torch.tensor(1.0))
    s = class_weights(counts, "sqrt")
    assert s[1] / s[0] < w[1] / w[0]
    with pytest.raises(ValueError, match="unknown class weighting 'inverse'"):
        class_weights(counts, "inverse")
