"""Trainer: exact resume, NaN handling, class weights, metrics."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from cfcclone.checkpoint import load_policy, save_policy
from cfcclone.config import replace_path
from cfcclone.envs import EnvConfig
from cfcclone.training import TrainConfig, Trainer, TrainingError, class_weights


@pytest.fixture(scope="module")
def data(follower_data):
    return follower_data


NESTED = {
    "encoder": "policy",
    "units": "policy",
    "seq_len": "window",
    "horizon": "window",
    "burn_in": "window",
    "lr": "optim",
    "warmup": "optim",
    "schedule": "optim",
    "grad_clip": "optim",
}


def _config(data, out, **kw):
    """A tiny TrainConfig; nested fields may be given by their own names (lr=...)."""
    base = dict(data=str(data), out=str(out), encoder="nature", units=8, seq_len=8, batch=4)
    base.update(lr=1e-3, epochs=2, batches_per_epoch=3, eval_episodes=0, progress=False)
    values = {**base, **kw}
    paths = {f"{NESTED[k]}.{k}" if k in NESTED else k: v for k, v in values.items()}
    return replace_path(TrainConfig(), paths)


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
    trainer.config = dataclasses.replace(trainer.config, epochs=2)
    with pytest.raises(TrainingError, match=r"loss became nan in epoch 2.*from epoch 1"):
        trainer.fit()
    kept = load_policy(tmp_path / "run" / "last.safetensors").policy.state_dict()
    assert all(torch.equal(kept[k], good[k]) for k in good)


def test_metrics_and_checkpoints_are_written(data, tmp_path):
    Trainer(_config(data, tmp_path / "run", epochs=1, eval_episodes=1, eval_envs=1)).fit()
    row = json.loads((tmp_path / "run" / "metrics.jsonl").read_text())
    assert {"train_loss", "val_loss", "val_acc", "return_mean", "returns"} <= row.keys()
    assert len(row["returns"]) == 1 and 0 <= row["val_acc"] <= 1
    best = load_policy(tmp_path / "run" / "best.safetensors")
    assert best.policy.config.action_meanings == ["NOOP", "FIRE", "RIGHT", "LEFT"]
    config = _config(data, tmp_path / "run", epochs=1, eval_episodes=1, eval_envs=1)
    assert best.train_config == dataclasses.replace(config, policy=best.policy.config)
    assert best.policy.config == dataclasses.replace(
        config.policy, n_actions=4, action_meanings=["NOOP", "FIRE", "RIGHT", "LEFT"]
    )


def test_class_weights():
    counts = np.array([100, 1, 50, 49])
    assert class_weights(counts, "none") is None
    w = class_weights(counts, "balanced")
    assert w.argmax() == 1 and w.argmin() == 0 and torch.isclose(w.mean(), torch.tensor(1.0))
    s = class_weights(counts, "sqrt")
    assert s[1] / s[0] < w[1] / w[0]
    with pytest.raises(ValueError, match="unknown class weighting 'inverse'"):
        class_weights(counts, "inverse")


def test_class_weights_floor_a_class_under_one_step_in_a_thousand():
    # Pong's recorded actions: the env's 22 serves (FIRE) among 173,002 steps; 0 for the last two
    counts = np.array([154406, 22, 9167, 9407, 0, 0])
    w = class_weights(counts, "balanced")
    floor = 0.001 * counts.sum()
    assert torch.isclose(w[1] / w[2], torch.tensor(9167 / floor, dtype=torch.float32))
    assert torch.isclose(w[2] / w[0], torch.tensor(154406 / 9167, dtype=torch.float32))
    assert torch.isclose(w[[0, 1, 2, 3]].mean(), torch.tensor(1.0))
    moves = w[2] * 9167 + w[3] * 9407
    assert w[1] * 22 < 0.1 * moves  # FIRE no longer weighs as much as a move class
    s = class_weights(counts, "sqrt")
    assert torch.isclose(s[1] / s[2], torch.tensor((9167 / floor) ** 0.5, dtype=torch.float32))


def _unrolled(policy, batch, h, burn_in=0):
    """Hand-unrolled reference: the CfC cell step by step, the state zeroed at episode starts
    and cut from the graph after the burn-in steps. Returns (mean loss after burn-in, h)."""
    features = policy.encode(batch.obs)
    h = torch.zeros(len(features), policy.rnn.state_size) if h is None else h
    logits = []
    for t in range(features.shape[1]):
        h = torch.where(batch.episode_start[:, t, None], torch.zeros_like(h), h)
        if t == burn_in:
            h = h.detach()
        out, h = policy.rnn.rnn_cell(features[:, t], h, 1.0)
        logits.append(policy.rnn.fc(out))
    logits = torch.stack(logits, 1)[:, burn_in:]
    loss = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), batch.actions[:, burn_in:].reshape(-1)
    )
    return loss, h


def _grads(policy):
    return {n: p.grad.clone() for n, p in policy.named_parameters()}


def _reference_grads(policy, batch, h=None, burn_in=0):
    policy.zero_grad()
    loss, _ = _unrolled(policy, batch, h, burn_in)
    loss.backward()
    return loss.item(), _grads(policy)


def _assert_matches_reference(trainer, loss, batch, h=None, burn_in=0):
    """The trainer's last step (its loss, and its gradients left on the policy) equals the
    hand-unrolled reference; without the horizon's initial state the gradients differ."""
    got = _grads(trainer.policy)
    ref_loss, expected = _reference_grads(trainer.policy, batch, h, burn_in)
    assert loss == pytest.approx(ref_loss, rel=1e-5)
    for name, g in expected.items():
        torch.testing.assert_close(got[name], g, rtol=1e-4, atol=1e-7, msg=name)
    _, plain = _reference_grads(trainer.policy, batch)
    assert not torch.allclose(plain["rnn.fc.weight"], got["rnn.fc.weight"])


def _frozen(data, out, **kw):
    """A trainer whose steps leave the weights as they are (lr 0, no clipping), in fp32."""
    return Trainer(_config(data, out, lr=0.0, grad_clip=1e9, amp="off", **kw))


def test_burn_in_gradients_equal_a_hand_unrolled_reference(data, tmp_path):
    trainer = _frozen(data, tmp_path / "run", horizon="burn-in", burn_in=3)
    batch = trainer.train_set.sample(4, np.random.default_rng(0))
    loss, _ = trainer.train_step(batch)
    _assert_matches_reference(trainer, loss, batch, burn_in=3)


def test_stored_state_gradients_equal_a_hand_unrolled_reference(data, tmp_path):
    trainer = _frozen(data, tmp_path / "run", horizon="stored")
    streams = trainer.train_set.streams(4, np.random.default_rng(0))
    first, second = streams.next(), streams.next()
    second.episode_start[1, 5] = True  # row 1 begins an episode inside the window
    trainer.train_step(first)
    carried = trainer.hx
    loss, _ = trainer.train_step(second, carried)
    with torch.no_grad():  # leaves the step's gradients on the policy
        _, h = _unrolled(trainer.policy, first, None)
    torch.testing.assert_close(carried, h, rtol=1e-5, atol=1e-6)
    _assert_matches_reference(trainer, loss, second, h)


def test_stored_state_training_runs_and_resumes_exactly(data, tmp_path):
    straight = Trainer(_config(data, tmp_path / "a", epochs=2, horizon="stored"))
    straight.fit()
    Trainer(_config(data, tmp_path / "b", epochs=1, horizon="stored")).fit()
    resumed = Trainer(_config(data, tmp_path / "b", epochs=2, horizon="stored"), resume=True)
    resumed.fit()
    a, b = straight.policy.state_dict(), resumed.policy.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_bad_horizons_are_refused(data, tmp_path):
    with pytest.raises(ValueError, match="unknown horizon 'long'; expected one of"):
        Trainer(_config(data, tmp_path / "a", horizon="long"))
    with pytest.raises(ValueError, match=r"expected 0 < burn_in < seq_len \(8\), got 8"):
        Trainer(_config(data, tmp_path / "b", horizon="burn-in", burn_in=8))


def test_init_starts_from_a_checkpoint(data, tmp_path):
    first = Trainer(_config(data, tmp_path / "a", epochs=1))
    first.fit()
    tuned = Trainer(_config(data, tmp_path / "b", init=str(tmp_path / "a" / "last.safetensors")))
    a, b = first.policy.state_dict(), tuned.policy.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    other = tmp_path / "other.safetensors"
    save_policy(other, first.policy, EnvConfig(game="breakout", sticky_actions=0.0))
    with pytest.raises(ValueError, match="was trained on"):
        Trainer(_config(data, tmp_path / "c", init=str(other)))


def test_learning_rate_warms_up_then_follows_the_schedule(data, tmp_path):
    trainer = Trainer(_config(data, tmp_path / "a", epochs=2, warmup=2, schedule="cosine"))
    lrs = [trainer.learning_rate(s) for s in range(6)]  # 2 epochs of 3 batches
    assert lrs[:2] == pytest.approx([5e-4, 1e-3])
    assert lrs[2] == pytest.approx(1e-3) and lrs[3] == pytest.approx(
        0.5e-3 * (1 + np.cos(np.pi / 4))
    )
    assert lrs[2] > lrs[3] > lrs[4] > lrs[5] > 0
    constant = Trainer(_config(data, tmp_path / "b", warmup=2))
    assert [constant.learning_rate(s) for s in (0, 1, 2, 50)] == pytest.approx([5e-4] + [1e-3] * 3)
    trainer.fit()
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(lrs[5])
    with pytest.raises(ValueError, match="unknown schedule 'step'"):
        Trainer(_config(data, tmp_path / "c", schedule="step"))


def test_resume_is_exact_under_a_schedule(data, tmp_path):
    kw = dict(epochs=3, warmup=2, schedule="cosine")
    straight = Trainer(_config(data, tmp_path / "a", **kw))
    straight.fit()

    def killed_after_two(row):
        if row["epoch"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Trainer(_config(data, tmp_path / "b", **kw)).fit(on_epoch=killed_after_two)
    resumed = Trainer(_config(data, tmp_path / "b", **kw), resume=True)
    assert resumed.epoch == 2
    resumed.fit()
    a, b = straight.policy.state_dict(), resumed.policy.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed run diverged under the schedule"


def test_resume_drops_a_half_written_metrics_line(data, tmp_path):
    Trainer(_config(data, tmp_path / "run", epochs=1)).fit()
    metrics = tmp_path / "run" / "metrics.jsonl"
    metrics.write_text(metrics.read_text() + '{"epoch": 2, "train_lo')  # a crash mid-write
    Trainer(_config(data, tmp_path / "run", epochs=2), resume=True).fit()
    rows = [json.loads(r) for r in metrics.read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]


def test_batchnorm_recalibration_is_the_exact_average_and_leaves_training_alone(data, tmp_path):
    """One calibration batch: each BatchNorm's running statistics become that batch's own
    mean and unbiased variance of its input; the weights and the training batches are those
    of a run without it."""
    kw = dict(encoder="tutorial", epochs=1, batches_per_epoch=2, batch=2, seq_len=4, amp="off")
    plain = Trainer(_config(data, tmp_path / "plain", bn_recalibration=0, **kw))
    plain.fit()
    for m in plain.policy.modules():  # 0 keeps the momentum averages of the 2 steps trained
        if isinstance(m, torch.nn.BatchNorm2d):
            assert int(m.num_batches_tracked) == 2 and m.momentum == 0.1
    trainer = Trainer(_config(data, tmp_path / "precise", bn_recalibration=1, **kw))
    seen = {}
    norms = {n: m for n, m in trainer.policy.named_modules() if isinstance(m, torch.nn.BatchNorm2d)}
    assert len(norms) == 2

    def grab(name):
        def hook(module, args):
            if module.training:  # the calibration forward (validation runs in eval mode)
                seen[name] = args[0].detach().clone()

        return hook

    handles = [m.register_forward_pre_hook(grab(n)) for n, m in norms.items()]
    trainer.train_epoch()  # as fit() does: train, recalibrate, validate
    seen.clear()
    trainer.recalibrate_batchnorm()
    for h in handles:
        h.remove()
    for name, m in norms.items():
        x = seen[name].transpose(0, 1).reshape(m.num_features, -1)
        torch.testing.assert_close(m.running_mean, x.mean(1), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(m.running_var, x.var(1, unbiased=True), rtol=1e-4, atol=1e-5)
        assert m.momentum == 0.1  # restored
    ours, theirs = trainer.policy.state_dict(), plain.policy.state_dict()
    for key, value in ours.items():
        if "running" not in key and "num_batches" not in key:
            assert torch.equal(value, theirs[key]), key  # the same weights after the epoch
    assert trainer.rng.bit_generator.state == plain.rng.bit_generator.state


def test_batchnorm_recalibration_must_not_be_negative(data, tmp_path):
    with pytest.raises(ValueError, match="expected bn_recalibration >= 0, got -1"):
        _config(data, tmp_path, bn_recalibration=-1)


def _masked_weights(rnn):
    """(weight, mask) pairs of a wired ncps core: a wired CfC's cells mask ff1 and ff2 (their
    time gates are dense), an LTC masks every synapse parameter of a mask's shape."""
    from ncps.torch.ltc_cell import LTCCell

    from cfcclone.models.cores import wiring_of

    assert wiring_of(rnn) is not None
    cell = rnn.rnn_cell
    if isinstance(cell, LTCCell):
        masks = {"sparsity_mask": ("w", "erev", "mu", "sigma"),
                 "sensory_sparsity_mask": ("sensory_w", "sensory_erev", "sensory_mu",
                                           "sensory_sigma")}  # fmt: skip
        return [(cell._params[w], cell._params[m]) for m, ws in masks.items() for w in ws]
    return [(getattr(layer, f).weight, layer.sparsity_mask) for layer in cell._layers
            for f in ("ff1", "ff2")]  # fmt: skip


@pytest.mark.parametrize(
    "policy",
    [dict(wiring="autoncp", units=10, features=16),
     dict(core="ltc", wiring="ncp", units=10, ncp=[4, 2, 3, 2, 2, 2])],
    ids=["cfc_autoncp", "ltc_ncp"],
)  # fmt: skip
def test_a_wiring_still_holds_after_training(data, tmp_path, policy):
    config = _config(data, tmp_path / "run")
    config = dataclasses.replace(config, policy=dataclasses.replace(config.policy, **policy))
    Trainer(config).fit()
    trained = load_policy(tmp_path / "run" / "last.safetensors").policy
    fresh = type(trained)(trained.config)
    pairs = _masked_weights(trained.rnn)
    for (w, m), (w0, m0) in zip(pairs, _masked_weights(fresh.rnn), strict=True):
        assert torch.equal(m, m0) and 0 < int((m == 0).sum()) < m.numel()  # the same synapses
        assert not torch.equal(w, w0)  # and trained weights
    obs = torch.randint(0, 256, (2, 5, 4, 84, 84), dtype=torch.uint8)
    with torch.no_grad():
        before, _ = trained(obs)
        for w, m in pairs:  # a weight without a synapse has no effect, whatever its value
            w.add_(torch.randn_like(w) * 10 * (m == 0))
        after, _ = trained(obs)
    assert torch.equal(before, after)


def test_tensorboard_logs_each_epochs_figures_beside_the_metrics(data, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = dataclasses.replace(_config(data, tmp_path / "run"), tensorboard=True)
    rows = Trainer(config).fit()
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    for key in ("train_loss", "val_loss", "val_acc"):
        logged = [(e.step, e.value) for e in events.Scalars(key)]
        assert logged == [(r["epoch"], pytest.approx(r[key], rel=1e-6)) for r in rows]
