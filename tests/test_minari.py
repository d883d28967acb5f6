"""Minari in and out: small datasets made here with minari.DataCollector over ALE/Breakout-v5
(the code that made the published sets); imports equal the envs' preprocessing of the same
play, exports load in Minari and come back byte for byte, and bad datasets are refused."""

import os
import shutil
import sys

import ale_py
import gymnasium as gym
import minari
import numpy as np
import pytest
from gymnasium.wrappers import AtariPreprocessing

from cfcclone.cli import main
from cfcclone.data.format import DatasetError, list_shards, open_shard
from cfcclone.data.manifest import Manifest
from cfcclone.data.minari_ale import gray
from cfcclone.data.minari_format import export_minari, import_minari
from cfcclone.envs import EnvConfig, make_env

gym.register_envs(ale_py)
SEEDS = (3, 4, 5)
BREAKOUT_IN_FULL_SET = [0, 1, 3, 4]  # NOOP, FIRE, RIGHT, LEFT among ALE's 18 actions


def make_minari(root, name, env, actions=(0, 1, 2, 3), seeds=SEEDS, **collector):
    """A Minari dataset at root/name of random `actions` on `env`, one episode per seed
    (`actions` None: samples of the env's action space)."""
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    collector_env = minari.DataCollector(env, jpeg_encoding=False, **collector)
    rng = np.random.default_rng(0)
    collector_env.action_space.seed(0)
    for seed in seeds:
        collector_env.reset(seed=seed)
        done = False
        while not done:
            a = collector_env.action_space.sample() if actions is None else int(rng.choice(actions))
            *_, terminated, truncated, _ = collector_env.step(a)
            done = terminated or truncated
    with pytest.warns(UserWarning):  # no eval env: Minari says it will use this one
        collector_env.create_dataset(
            name, algorithm_name="random", author="t", author_email="t@t", code_permalink="t",
            description="test",
        )  # fmt: skip
    collector_env.close()
    return root / name


def v5(frames=240, **kwargs):
    return gym.make("ALE/Breakout-v5", max_num_frames_per_episode=frames, **kwargs)


@pytest.fixture(scope="module")
def minari_root(tmp_path_factory):
    old = os.environ.get("MINARI_DATASETS_PATH")
    yield tmp_path_factory.mktemp("minari")
    if old is None:
        os.environ.pop("MINARI_DATASETS_PATH", None)
    else:
        os.environ["MINARI_DATASETS_PATH"] = old


@pytest.fixture(scope="module")
def rgb_set(minari_root):
    """ALE/Breakout-v5 as Minari's Atari sets have it: RGB, frame skip 4, no max-pool; sticky
    actions 0.25 (v5's default), so the replay must follow the same seeds."""
    return make_minari(minari_root, "test/breakout/rgb-v0", v5())


def replay_frames(env_config, seed, actions):
    """The newest frame of every observation our env shows for this play."""
    env = make_env(**env_config.to_dict())
    obs, _ = env.reset(seed=seed)
    frames = [obs[-1]]
    for a in actions[:-1]:
        obs, *_ = env.step(int(a))
        frames.append(obs[-1])
    return np.stack(frames)


def check_import_replays(source, out, obs_kind):
    manifest = import_minari(source, out, progress=False)
    dataset = minari.MinariDataset(source / "data")
    shards = list_shards(out)
    assert len(shards) == dataset.total_episodes == len(SEEDS)
    assert manifest.source == "minari" and manifest.minari["observations"] == obs_kind
    assert manifest.steps == dataset.total_steps
    for seed, episode, shard in zip(SEEDS, dataset.iterate_episodes(), shards, strict=True):
        meta, arrays = open_shard(shard, verify=True)
        (segment,) = meta["segments"]
        assert segment.length == len(episode.actions) and segment.seed == seed
        assert segment.complete == bool(episode.terminations[-1])
        assert np.array_equal(arrays["actions"], episode.actions)
        assert np.array_equal(arrays["rewards"], episode.rewards.astype(np.float32))
        expected = replay_frames(manifest.env, seed, episode.actions)
        assert np.array_equal(arrays["frames"], expected)
    return manifest


def test_rgb_import_equals_the_envs_preprocessing_of_the_same_play(rgb_set, tmp_path):
    manifest = check_import_replays(rgb_set, tmp_path / "ds", "screen")
    env = manifest.env
    assert (env.max_pool, env.noop_max, env.fire, env.frame_skip) == (False, 0, False, 4)
    assert (env.sticky_actions, env.max_episode_frames) == (0.25, 240)
    assert "max_pool=False" in env.describe()


@pytest.mark.parametrize("kind", ["grayscale", "preprocessed"])
def test_grayscale_and_preprocessed_observations_are_accepted(minari_root, tmp_path, kind):
    if kind == "grayscale":
        env = v5(obs_type="grayscale")
    else:  # a dataset made with gymnasium's AtariPreprocessing: pooled 84x84 frames
        env = AtariPreprocessing(v5(frameskip=1, frames=960), noop_max=5, frame_skip=4)
    source = make_minari(minari_root, f"test/breakout/{kind}-v0", env)
    manifest = check_import_replays(source, tmp_path / "ds", kind.replace("grayscale", "screen"))
    pooled = kind == "preprocessed"
    assert (manifest.env.max_pool, manifest.env.noop_max) == (pooled, 5 if pooled else 0)


def test_gray_is_ales_grayscale():
    env = v5()
    env.reset(seed=0)
    ale = env.unwrapped.ale
    for _ in range(50):
        env.step(env.action_space.sample())
        assert np.array_equal(gray(ale.getScreenRGB()), ale.getScreenGrayscale())


def test_the_full_action_set_is_mapped_to_the_minimal_one(minari_root, tmp_path):
    source = make_minari(
        minari_root, "test/breakout/full-v0", v5(full_action_space=True),
        actions=BREAKOUT_IN_FULL_SET, seeds=(3,),
    )  # fmt: skip
    import_minari(source, tmp_path / "ds", progress=False)
    (episode,) = minari.MinariDataset(source / "data").iterate_episodes()
    _, arrays = open_shard(list_shards(tmp_path / "ds")[0])
    expected = [BREAKOUT_IN_FULL_SET.index(a) for a in episode.actions]
    assert arrays["actions"].tolist() == expected


def test_export_load_import_gives_back_the_same_bytes(follower_data, tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    path = export_minari(follower_data, "cfcclone/breakout/follower-v0", progress=False)
    assert path == tmp_path / "minari" / "cfcclone" / "breakout" / "follower-v0"
    loaded = minari.load_dataset("cfcclone/breakout/follower-v0")
    assert "cfcclone/breakout/follower-v0" in minari.list_local_datasets()
    original = Manifest.read(follower_data)
    assert loaded.total_steps == original.steps
    episode = next(loaded.iterate_episodes())
    assert episode.observations.shape == (len(episode.actions) + 1, 84, 84)
    back = import_minari("cfcclone/breakout/follower-v0", tmp_path / "back", progress=False)
    assert back.env == original.env and back.steps == original.steps
    for a, b in zip(
        original.shard_dirs(follower_data), back.shard_dirs(tmp_path / "back"), strict=True
    ):
        (_, x), (_, y) = open_shard(a), open_shard(b)
        for key in ("frames", "actions", "rewards"):
            assert np.array_equal(x[key], y[key]), key
    # a Minari user recovers an env that makes the same frames
    env = loaded.recover_environment()
    obs, _ = env.reset(seed=7)
    ours, _ = make_env(**original.env.to_dict()).reset(seed=7)
    assert np.array_equal(obs, ours[-1])


def test_export_refuses_an_existing_dataset_id(follower_data, tmp_path):
    export_minari(follower_data, "test/breakout/copy-v0", datasets=tmp_path, progress=False)
    with pytest.raises(FileExistsError):
        export_minari(follower_data, "test/breakout/copy-v0", datasets=tmp_path, progress=False)


def refused(source, out, capsys, message):
    """import-minari exits 2 with a one-line error naming the problem, and writes nothing."""
    assert main(["import-minari", str(source), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()  # a progress bar, then the error
    last = err.splitlines()[-1]
    assert last.startswith("cfcclone import-minari: error: ") and message in last, err
    assert "Traceback" not in err
    assert not out.exists() and not list(out.parent.glob(f"{out.name}*"))


def test_an_env_without_state_vectors_is_refused(minari_root, tmp_path, capsys):
    source = make_minari(minari_root, "test/frozenlake/random-v0", gym.make("FrozenLake-v1"),
                         seeds=(0,))  # fmt: skip
    refused(source, tmp_path / "ds", capsys, "expected a flat Box observation space")


def test_a_different_action_set_is_refused(minari_root, tmp_path, capsys):
    source = make_minari(minari_root, "test/breakout/six-v0", v5(),
                         seeds=(0,), action_space=gym.spaces.Discrete(6))  # fmt: skip
    refused(source, tmp_path / "ds", capsys, "6 actions, but breakout's minimal set has 4")


def test_an_action_outside_the_minimal_set_is_refused(minari_root, tmp_path, capsys):
    source = make_minari(minari_root, "test/breakout/up-v0", v5(full_action_space=True),
                         actions=(0, 2), seeds=(0,))  # fmt: skip
    refused(source, tmp_path / "ds", capsys, "action 2 (UP) is not in breakout's minimal set")


def test_a_truncated_hdf5_file_is_refused(rgb_set, tmp_path, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(rgb_set, broken)
    h5 = broken / "data" / "main_data.hdf5"
    h5.write_bytes(h5.read_bytes()[: h5.stat().st_size // 2])
    refused(broken, tmp_path / "ds", capsys, "unreadable")


def test_a_missing_dataset_is_named(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    refused("nobody/nothing-v0", tmp_path / "ds", capsys, "no Minari dataset 'nobody/nothing-v0'")


def test_a_missing_extra_is_named(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "minari", None)  # as if not installed
    refused("nobody/nothing-v0", tmp_path / "ds", capsys, "pip install 'cfcclone[minari]'")


def test_import_refuses_an_existing_out(rgb_set, tmp_path):
    (tmp_path / "ds").mkdir()
    with pytest.raises(FileExistsError):
        import_minari(rgb_set, tmp_path / "ds", progress=False)
    with pytest.raises(DatasetError, match="no metadata.json"):
        import_minari(tmp_path / "ds", tmp_path / "other", progress=False)


# MuJoCo: Minari's MuJoCo sets hold float64 state vectors and Box actions of a gymnasium env


@pytest.fixture(scope="module")
def hopper_set(minari_root):
    """Hopper-v5 as `mujoco/hopper/*` has it, with random actions and 40-step episodes."""
    return make_minari(minari_root, "test/hopper/random-v0",
                       gym.make("Hopper-v5", max_episode_steps=40), actions=None)  # fmt: skip


def test_hopper_import_holds_the_states_and_actions_and_replays(hopper_set, tmp_path):
    manifest = import_minari(hopper_set, tmp_path / "ds", progress=False)
    assert (manifest.obs.kind, manifest.obs.dim) == ("vector", 11)
    assert manifest.action.is_box and manifest.action.low == [-1.0] * 3
    assert manifest.env == EnvConfig(game="Hopper-v5", stack=1,
                                      env_kwargs={"max_episode_steps": 40})  # fmt: skip
    source = minari.load_dataset(str(hopper_set))
    episodes = list(source.iterate_episodes())
    assert manifest.steps == sum(len(e.actions) for e in episodes)
    for episode, shard in zip(episodes, manifest.shard_dirs(tmp_path / "ds"), strict=True):
        assert episode.observations.dtype == np.float64
        _, arrays = open_shard(shard)
        T = len(episode.actions)
        assert np.array_equal(arrays["frames"], episode.observations[:T].astype(np.float32))
        assert np.array_equal(arrays["actions"], episode.actions.astype(np.float32))
        assert np.array_equal(arrays["rewards"], episode.rewards.astype(np.float32))
    # the manifest's env is the dataset's: the same first state on the episode's seed
    env = make_env(**manifest.env.to_dict())
    obs, _ = env.reset(seed=SEEDS[0])
    assert np.array_equal(obs[-1], episodes[0].observations[0].astype(np.float32))


def test_hopper_export_import_round_trip(hopper_set, tmp_path):
    first = import_minari(hopper_set, tmp_path / "ds", progress=False)
    path = export_minari(tmp_path / "ds", "cfc/hopper/copy-v0", datasets=tmp_path / "m",
                         progress=False)  # fmt: skip
    exported = minari.MinariDataset(path / "data")
    assert exported.observation_space.dtype == np.float64  # the env's own space
    assert exported.action_space.shape == (3,)
    env = exported.recover_environment()
    assert env.spec.id == "Hopper-v5" and env.spec.max_episode_steps == 40
    back = import_minari(path, tmp_path / "back", progress=False)
    assert (back.env, back.obs, back.action, back.steps) == (
        first.env, first.obs, first.action, first.steps)  # fmt: skip
    for a, b in zip(first.shard_dirs(tmp_path / "ds"), back.shard_dirs(tmp_path / "back"),
                    strict=True):  # fmt: skip
        (_, x), (_, y) = open_shard(a), open_shard(b)
        for key in ("frames", "actions", "rewards"):
            assert np.array_equal(x[key], y[key]), key


def test_nan_in_a_hopper_set_is_refused(hopper_set, tmp_path, capsys):
    import h5py

    broken = tmp_path / "broken"
    shutil.copytree(hopper_set, broken)
    with h5py.File(broken / "data" / "main_data.hdf5", "r+") as f:
        f["episode_1"]["observations"][5, 2] = np.nan
    refused(broken, tmp_path / "ds", capsys, "observations holds NaN or inf (first at row 5)")


def test_a_hopper_set_of_other_spaces_is_refused(minari_root, tmp_path, capsys):
    source = make_minari(minari_root, "test/hopper/wide-v0",
                         gym.make("Hopper-v5", max_episode_steps=5), actions=None, seeds=(0,),
                         action_space=gym.spaces.Box(-2, 2, (3,), np.float32))  # fmt: skip
    refused(source, tmp_path / "ds", capsys, "are not Hopper-v5's")


@pytest.mark.parametrize("dataset_id", ["noversion", "x/y"])
def test_a_dataset_id_without_a_version_is_named(follower_data, tmp_path, capsys, dataset_id):
    args = ["export-minari", str(follower_data), "--dataset-id", dataset_id]
    assert main([*args, "--datasets", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"cfcclone export-minari: error: bad dataset id '{dataset_id}'"), err
    assert "v(version)" in err and "Traceback" not in err and not list(tmp_path.iterdir())
