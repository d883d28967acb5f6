"""gymnasium envs beyond ALE: state vectors and rendered frames, stacked as ALE's, with the
rollout loop's episode-start rule, and one preprocessing from collection to evaluation."""

import json

import numpy as np
import pytest

from cfcclone import collect, make_env, make_vector_env
from cfcclone.cli import main
from cfcclone.data.format import open_shard
from cfcclone.data.manifest import Manifest
from cfcclone.envs import EnvConfig, env_specs
from cfcclone.rollout import rollout


class RandomActor:
    def __init__(self, seed=0):
        self.rng = np.random.default_rng(seed)

    def act(self, obs, episode_start, info):
        return self.rng.integers(0, 2, len(obs))


def test_state_vectors_are_stacked_as_frames_and_info_holds_the_full_state():
    env = make_env("CartPole-v1", stack=3)
    obs, info = env.reset(seed=3)
    assert obs.shape == (3, 4) and obs.dtype == np.float32
    assert (obs == info["state"]).all()  # every slot holds the first state at a reset
    obs2, _, _, _, info2 = env.step(1)
    assert (obs2[:2] == obs[1:]).all() and (obs2[-1] == info2["state"]).all()


def test_noise_reaches_the_student_and_never_the_state():
    env = make_env("CartPole-v1", stack=1, obs_noise=0.5)
    obs, info = env.reset(seed=0)
    assert not np.allclose(obs[-1], info["state"])
    again, _ = make_env("CartPole-v1", stack=1, obs_noise=0.5).reset(seed=0)
    assert (again == obs).all()  # the noise follows the reset seed


def test_episode_start_follows_the_last_step_end_on_gym_vector_envs():
    env = make_vector_env(num_envs=2, game="CartPole-v1", stack=1)
    starts, dones = [], []
    for k, t in enumerate(rollout(env, RandomActor(), seed=0)):
        starts.append(t.episode_start.copy())
        dones.append(t.done.copy())
        if k == 200:
            break
    starts, dones = np.array(starts), np.array(dones)
    assert starts[0].all()
    assert dones.sum() >= 4  # random CartPole episodes last about 20 steps
    assert (starts[1:] == dones[:-1]).all()


def test_specs_follow_the_spaces():
    obs, action, meanings = env_specs(EnvConfig(game="Pendulum-v1"))
    assert (obs.kind, obs.dim, action.kind, action.low, action.high) == (
        "vector", 3, "box", [-2.0], [2.0]
    )  # fmt: skip
    assert meanings == []
    obs, action, meanings = env_specs(EnvConfig(game="CartPole-v1", pixels=True))
    assert (obs.kind, action.kind, meanings) == ("image", "discrete", ["0", "1"])


def test_bad_env_options_get_one_line_errors(tmp_path):
    with pytest.raises(ValueError, match="cannot make gymnasium env 'NoSuchEnv-v3'"):
        collect(tmp_path / "a", "NoSuchEnv-v3", "planner", frames=10, progress=False)
    with pytest.raises(ValueError, match=r"obs_mask \[0, 9\] indexes past CartPole-v1's 4"):
        collect(tmp_path / "b", "CartPole-v1", "planner", frames=10, obs_mask=[0, 9],
                progress=False)  # fmt: skip
    with pytest.raises(ValueError, match="apply to gymnasium envs"):
        EnvConfig(game="breakout", obs_mask=[0])
    with pytest.raises(ValueError, match="apply to gymnasium envs"):
        EnvConfig(game="breakout", env_kwargs={"frameskip": 2})
    with pytest.raises(ValueError, match="unexpected keyword argument 'bogus'"):
        collect(tmp_path / "c", "CartPole-v1", "planner", frames=10, env_kwargs={"bogus": 1},
                progress=False)  # fmt: skip
    assert not any((tmp_path / d).exists() for d in "abc")


def test_env_kwargs_reach_gym_make_and_are_stored_with_the_data(tmp_path):
    main(["collect", "--env", "CartPole-v1", "--expert", "planner", "--episodes", "2",
          "--frames", "100", "--envs", "1", "--stack", "1", "--out", str(tmp_path / "d"),
          "--env-kwargs", '{"max_episode_steps": 17, "sutton_barto_reward": true}'])  # fmt: skip
    manifest = Manifest.read(tmp_path / "d")
    assert manifest.env.env_kwargs == {"max_episode_steps": 17, "sutton_barto_reward": True}
    assert manifest.steps == 34 and manifest.segments == 2  # truncated at 17 steps
    env = make_env(**manifest.env.to_dict())
    assert env.spec.max_episode_steps == 17 and env.unwrapped._sutton_barto_reward


def test_the_cartpole_planner_holds_the_pole_for_500_steps():
    from cfcclone.evaluation import evaluate_expert

    result = evaluate_expert("planner", EnvConfig(game="CartPole-v1", stack=1), episodes=2)
    assert result.returns == [500.0, 500.0]


@pytest.mark.slow
def test_rendered_frames_are_stored_as_the_env_shows_them(tmp_path):
    """One preprocessing from collection to evaluation: replaying a stored episode's seed and
    actions in a fresh env gives back the stored frames, byte for byte."""
    out = tmp_path / "cartpole"
    collect(out, "CartPole-v1", "planner", frames=40, envs=1, pixels=True, screen_size=48,
            stack=2, progress=False)  # fmt: skip
    manifest = Manifest.read(out)
    assert (manifest.obs.kind, manifest.env.pixels) == ("image", True)
    shard = manifest.shard_dirs(out)[0]
    meta, arrays = open_shard(shard)
    seg = meta["segments"][0]
    env = make_env(**{k: v for k, v in manifest.env.to_dict().items()})
    obs, _ = env.reset(seed=seg.seed)
    assert obs.shape == (2, 48, 48) and obs.dtype == np.uint8
    seen = [obs[-1]]
    for a in arrays["actions"][:-1]:
        obs, *_ = env.step(int(a))
        seen.append(obs[-1])
    assert np.array_equal(np.stack(seen), arrays["frames"][: len(seen)])
    assert json.loads((shard / "meta.json").read_text())["game"] == "CartPole-v1"
