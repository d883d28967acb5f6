"""The experiment scripts' own logic (scripts/ is not a package: loaded by path)."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
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
