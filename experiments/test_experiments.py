"""The experiments' own logic, loaded by path (experiments/NAME/run.py). `make test` does not
run these (its tests are tests/); run them with `pytest experiments`."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

EXPERIMENTS = Path(__file__).resolve().parent


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, EXPERIMENTS / name / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Fixed:
    """An expert that plays `actions[t % len]` in every env."""

    def __init__(self, actions, num_envs):
        self.actions, self.num_envs, self.t = actions, num_envs, 0

    def act(self, obs, episode_start, info):
        self.t += 1
        return np.full(self.num_envs, self.actions[self.t % len(self.actions)], np.int64)


def test_noisy_expert_swaps_to_another_action_at_its_odds():
    noisy = load("noisy_expert")
    actions, n = (0, 3, 2), 64

    def played(noise, steps=300):
        actor = noisy.Noisy(Fixed(actions, n), actions, noise, 0)
        return np.stack([actor.act(None, None, {}) for _ in range(steps)])

    fixed = Fixed(actions, n)
    expert = np.stack([fixed.act(None, None, {}) for _ in range(300)])
    assert np.array_equal(played(0.0), expert)
    always = played(1.0)
    assert np.all(always != expert) and np.isin(always, actions).all()
    for a in actions:  # the two other actions, drawn about as often (6,400 swaps of each)
        others = always[expert == a]
        assert set(np.unique(others)) == set(actions) - {a}
        assert np.mean(others == others[0]) == pytest.approx(0.5, abs=0.03)
    share = np.mean(played(0.1) != expert)
    assert share == pytest.approx(0.1, abs=0.01)


def test_noisy_expert_rejects_odds_outside_0_1():
    noisy = load("noisy_expert")
    with pytest.raises(ValueError, match="expected noise in \\[0, 1\\], got 1.5"):
        noisy.Noisy(Fixed((0, 1), 1), (0, 1), 1.5, 0)


def test_noisy_expert_replaces_only_the_kind_it_is_told():
    noisy = load("noisy_expert")
    actions, n = (0, 3, 2), 16
    fixed = Fixed(actions, n)
    expert = np.stack([fixed.act(None, None, {}) for _ in range(30)])
    for kind in ("missed", "extra"):
        actor = noisy.Noisy(Fixed(actions, n), actions, 1.0, 0, kind=kind)
        played = np.stack([actor.act(None, None, {}) for _ in range(30)])
        moved = expert != 0
        if kind == "missed":  # every move left out, every NOOP kept
            assert (played == 0).all()
            assert actor.replaced == moved.sum()
        else:  # every NOOP made a move, every move kept
            assert np.isin(played[~moved], (3, 2)).all() and len(np.unique(played[~moved])) == 2
            assert np.array_equal(played[moved], expert[moved])
            assert actor.replaced == (~moved).sum()
        assert actor.steps == 30 * n
    with pytest.raises(ValueError, match="expected kind in"):
        noisy.Noisy(Fixed(actions, n), actions, 0.1, 0, kind="late")


class Peek:
    """An expert that plays 2 where info carries the executed action, else 0."""

    def __init__(self, num_envs):
        self.num_envs = num_envs

    def act(self, obs, episode_start, info):
        return np.full(self.num_envs, 2 if "action" in info else 0, np.int64)


def test_noisy_expert_counts_the_labels_an_untold_copy_would_change():
    noisy = load("noisy_expert")
    info = {"action": np.zeros(3), "_action": np.ones(3, bool), "ram": np.zeros((3, 128))}
    assert noisy.Untold(Peek(3)).act(None, None, info).tolist() == [0, 0, 0]
    assert Peek(3).act(None, None, info).tolist() == [2, 2, 2]
    told = noisy.Noisy(Peek(3), (0, 2, 3), 0.0, 0, shadow=noisy.Untold(Peek(3)))
    same = noisy.Noisy(Peek(3), (0, 2, 3), 0.0, 0, shadow=Peek(3))
    for _ in range(4):
        assert told.act(None, None, info).tolist() == [2, 2, 2]
        same.act(None, None, info)
    assert (told.differs, told.steps) == (12, 12)
    assert (same.differs, same.steps) == (0, 12)


def steps(env_ids, lives, reward, start, terminated):
    """One rollout Transition of the fields LifeLosses reads."""
    from types import SimpleNamespace

    a = lambda x, t: np.asarray(x, t)  # noqa: E731
    return SimpleNamespace(
        env_ids=a(env_ids, np.int64),
        info={"lives": a(lives, np.int64)},
        reward=a(reward, float),
        episode_start=a(start, bool),
        terminated=a(terminated, bool),
        truncated=np.zeros(len(env_ids), bool),
        done=a(terminated, bool),
    )


def test_life_losses_records_the_score_at_each_life_lost_and_keeps_each_envs_quota():
    tally = load("life_losses").LifeLosses(num_envs=2, episodes=3)  # quotas: 2 and 1
    game = [  # env 0: 3 lives; the lives the actor saw drop a step after the loss
        ((3, 1.0, True, False), (2, 0.0, True, False)),
        ((3, 4.0, False, False), (2, 7.0, False, False)),
        ((2, 0.0, False, False), (2, 0.0, False, True)),  # env 0 lost a life at 5; env 1 ends
        ((2, 1.0, False, False), (5, 9.0, True, False)),  # env 1's second game: not kept
        ((1, 0.0, False, True), (5, 0.0, False, True)),  # 2 -> 1 seen: a loss at 6, then the end
        ((3, 2.0, True, True), (5, 0.0, True, False)),  # env 0's second game: one step
        ((3, 0.0, True, False), (5, 0.0, False, False)),  # env 0's third: past its quota
    ]
    kept = []
    for rows in game:
        lives, reward, start, end = zip(*rows, strict=True)
        kept.append(tally.update(steps([0, 1], lives, reward, start, end)))
    assert kept == [0, 0, 1, 0, 1, 1, 0] and tally.done
    assert tally.episodes == [[(7.0, 3)], [(5.0, 2), (6.0, 4), (6.0, 5)], [(2.0, 1)]]
    assert tally.histogram((0, 5, 10)).tolist() == [1, 4]


def test_life_losses_follows_the_envs_an_asynchronous_step_returned():
    tally = load("life_losses").LifeLosses(num_envs=3, episodes=3)
    tally.update(steps([2, 0], [2, 2], [1.0, 0.0], [True, True], [False, False]))
    tally.update(steps([1], [2], [3.0], [True], [False]))
    tally.update(steps([2, 1], [1, 2], [4.0, 0.0], [False, False], [True, True]))
    tally.update(steps([0], [2], [6.0], [False], [True]))
    assert tally.done
    assert tally.episodes == [[(1.0, 1), (5.0, 2)], [(3.0, 2)], [(6.0, 2)]]


def test_life_losses_rejects_no_episodes():
    with pytest.raises(ValueError, match="expected episodes >= 1, got 0"):
        load("life_losses").LifeLosses(num_envs=2, episodes=0)


class Logits:
    """A stand-in StatefulAgent whose step returns the same logits (B, n_actions)."""

    def __init__(self, logits):
        self.logits = logits

    def step(self, obs, episode_start, env_ids=None):
        import torch

        return torch.tensor(self.logits, dtype=torch.float32)


PONG = ["NOOP", "FIRE", "RIGHT", "LEFT", "RIGHTFIRE", "LEFTFIRE"]


def test_expert_overrides_sorts_each_disagreement_into_one_kind():
    over = load("expert_overrides")
    assert over.moves(PONG).tolist() == [0, 0, 1, -1, 1, -1]
    student, expert = np.array([0, 0, 1, 1, -1, 0]), np.array([0, 1, 0, -1, -1, -1])
    masks = over.kinds(student, expert)
    assert masks["missed"].tolist() == [False, True, False, False, False, True]
    assert masks["extra"].tolist() == [False, False, True, False, False, False]
    assert masks["wrong"].tolist() == [False, False, False, True, False, False]
    assert (sum(masks.values()) <= 1).all()  # one kind a step at most
    assert (sum(masks.values()).astype(bool) == (student != expert)).all()


def test_expert_overrides_plays_the_expert_on_the_fixed_kind_only():
    over = load("expert_overrides")
    # clone in 4 envs: NOOP, RIGHTFIRE, LEFT, FIRE; the expert: RIGHT, NOOP, RIGHT, NOOP
    logits = np.eye(6)[[0, 4, 3, 1]] * 5.0
    expert = [2, 0, 2, 0]

    class Expert:
        def act(self, obs, episode_start, info):
            return np.array(expert, np.int64)

    played = {}
    for fix in over.FIXES:
        actor = over.Overridden(Logits(logits), Expert(), PONG, fix)
        played[fix] = actor.act(None, None, {}).tolist()
        assert actor.counts == {"missed": 1, "extra": 1, "wrong": 1} and actor.steps == 4
    assert played["none"] == [0, 4, 3, 1]
    assert played["missed"] == [2, 4, 3, 1]
    assert played["extra"] == [0, 0, 3, 1]
    assert played["wrong"] == [0, 4, 2, 1]
    assert played["all"] == expert
    # a no-move bias of -6 turns each NOOP (logit 5, the rest 0) into the first move, RIGHT
    biased = over.Overridden(Logits(logits), Expert(), PONG, "none", noop_bias=-6.0)
    assert biased.act(None, None, {}).tolist() == [2, 4, 3, 2]
    with pytest.raises(ValueError, match="expected fix in"):
        over.Overridden(Logits(logits), Expert(), PONG, "some")


def test_probe_state_features_are_the_newest_reading_and_its_motion():
    probe = load("probe_state")
    history = np.zeros((1, probe.STACK, 2), np.float32)
    history[0, :, 0] = [10, 20, 40, 70]  # oldest first
    history[0, :, 1] = 50
    x = probe.features(history)
    # newest / 100, then newest - reading i, i = 0..2 (oldest first), / 10
    assert np.allclose(x[0], [0.7, 0.5, 6.0, 0.0, 5.0, 0.0, 3.0, 0.0])


def test_probe_state_mlp_is_greedy_at_temperature_0_and_samples_its_softmax_above():
    import torch

    probe = load("probe_state")
    torch.manual_seed(0)
    mlp = probe.MLP(4, (0, 2, 3))
    with torch.no_grad():
        for p in mlp.parameters():
            p.zero_()
        mlp.net[-1].bias.copy_(torch.tensor([np.log(0.7), np.log(0.2), np.log(0.1)]))
    x = np.zeros((20_000, 4), np.float32)
    assert set(mlp.act(x).tolist()) == {0}
    drawn = mlp.act(x, 1.0, np.random.default_rng(0))
    shares = [np.mean(drawn == a) for a in (0, 2, 3)]
    assert np.allclose(shares, [0.7, 0.2, 0.1], atol=0.015)


def test_probe_state_recorder_pads_the_history_at_a_start_and_shows_the_executed_move():
    probe = load("probe_state")
    rec = probe.Recorder("pong", 2, prev_action=True)
    obs = np.zeros((2, 4, 84, 84), np.uint8)
    ram = np.zeros((2, 128), np.uint8)
    ram[:, 49], ram[:, 54], ram[:, 51] = 100, 80, 120
    rec.act(obs, np.array([True, True]), {"ram": ram.copy()})
    ram[:, 49], ram[:, 54], ram[:, 51] = 104, 86, 120
    rec.act(obs, np.array([False, True]), {"ram": ram, "action": np.array([2, 3])})
    x = rec.x[-1]
    motion = np.array([0.4, 0.6, 0.0] * 3)  # (104 - 100, 86 - 80, 0) / 10, thrice
    assert np.allclose(x[0, 3:12], motion) and np.allclose(x[1, 3:12], 0)  # env 1 restarted
    assert np.allclose(x[:, :3], [[1.04, 0.86, 1.2]] * 2)
    assert x[0, 12:].tolist() == [0, 1, 0] and x[1, 12:].tolist() == [1, 0, 0]  # RIGHT; a start
    assert len(rec.y) == 2 and rec.y[-1].shape == (2,)


def test_probe_state_train_learns_a_threshold_and_scores_the_held_out_tail():
    probe = load("probe_state")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6000, 3)).astype(np.float32)
    y = np.where(x[:, 0] > 1.0, 3, np.where(x[:, 1] < -1.0, 2, 0))  # moves on 30% of steps
    model, acc, recall = probe.train(x, y, np.unique(y), epochs=8, seed=0)
    assert acc > 0.95 and recall > 0.85
    assert np.array_equal(
        model.act(np.array([[2, 0, 0], [0, -2, 0], [0, 0, 0]], np.float32)), [3, 2, 0]
    )


def test_probe_state_finetune_trains_the_given_mlp_on_and_a_fresh_one_without_it():
    import torch

    probe = load("probe_state")
    rng = np.random.default_rng(1)
    x = rng.normal(size=(6000, 3)).astype(np.float32)
    y = np.where(x[:, 0] > 1.0, 3, np.where(x[:, 1] < -1.0, 2, 0))
    actions = np.unique(y)
    start, _, _ = probe.train(x, y, actions, epochs=1, seed=0)
    before = [p.detach().clone() for p in start.parameters()]
    tuned, acc, recall = probe.train(
        x,
        y,
        actions,
        epochs=0,
        seed=1,
        model=start,
        batches=300,
        lr=3e-4,
        batch=256,
        weighting="sqrt",
    )
    assert tuned is start and acc > 0.95 and recall > 0.85  # the same MLP, trained on
    assert any(not torch.equal(a, b) for a, b in zip(before, tuned.parameters(), strict=True))
    fresh, _, _ = probe.train(x, y, actions, epochs=1, seed=0, model=start, batches=0)
    assert fresh is not start  # batches 0: a fresh MLP, as without a model
