"""Minari datasets in and out: `cfcclone import-minari` and `cfcclone export-minari`.

Minari (Farama's format for offline datasets, read by d3rlpy and TorchRL) stores each episode
as T+1 observations (reset, then one after each action), T actions, rewards, terminations and
truncations, with the gymnasium `EnvSpec` of the env that made them. Its Atari sets hold raw
(210, 160, 3) RGB frames of `ALE/<Game>-v5`: ALE skips 4 frames and returns the last, with no
max-pool and no no-op starts.

`import_minari` reads the game and the preprocessing from the EnvSpec (ALE's kwargs and an
`AtariPreprocessing` wrapper, where there is one) into the manifest's `EnvConfig`: a clone is
evaluated in an env that does what the dataset's env did, `max_pool=False` and all. Frames go
through the envs' own conversion: ALE's grayscale (`gray`, its luminance, exact on ALE's
palette), then the same `cv2` INTER_AREA resize. Observation t of an episode is the frame of
step t; the final observation has no step and is dropped. Each episode becomes a shard.

`export_minari` writes a cfcclone dataset as a Minari dataset of single preprocessed frames
(S, S) uint8, lossless (no JPEG), with an EnvSpec that `recover_environment()` turns into the
same preprocessing (ALE v5 and gymnasium's AtariPreprocessing), and the manifest's EnvConfig
under the metadata key "cfcclone" (the FIRE protocol and the stack are not in an EnvSpec).
The last stored frame stands in for an episode's final observation.

Any other env is a gymnasium env (MuJoCo's sets, `mujoco/hopper/expert-v0`): float64 state
vectors become float32 shards, actions stay `Box` vectors or indices (`minari_gym`).

Both write into a temporary folder renamed into place when finished: an error leaves nothing.
Minari and h5py come with the 'minari' extra.
"""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
from tqdm import tqdm

from cfcclone.atomic import atomic_path, atomic_write_text
from cfcclone.data.format import DatasetError, open_shard, write_shard
from cfcclone.data.manifest import Manifest
from cfcclone.data.minari_ale import (
    action_map,
    ale_episode,
    env_config_of,
    env_spec_of,
    is_ale,
)
from cfcclone.data.minari_gym import gym_episode, gym_side, gym_spaces_of
from cfcclone.envs import action_meanings
from cfcclone.spaces import ActionSpec, ObsSpec


def _minari():
    try:
        import minari
    except ImportError:
        raise ValueError("Minari datasets need minari: pip install 'cfcclone[minari]'") from None
    return minari


def _data_path(source) -> tuple[Path, str]:
    """The folder of a Minari dataset's metadata.json and data files, and how to name it."""
    path = Path(source)
    if not path.exists():
        _minari()
        from minari.storage.datasets_root_dir import get_dataset_path

        path = get_dataset_path(str(source))
        if not path.exists():
            raise FileNotFoundError(
                f"no Minari dataset {source!r}: neither a path nor a dataset id under {path.parent}"
                " (set MINARI_DATASETS_PATH, or give the dataset's folder)"
            )
    if (path / "data" / "metadata.json").exists():
        path = path / "data"
    if not (path / "metadata.json").exists():
        raise DatasetError(f"{path}: no metadata.json; is it a Minari dataset?")
    return path, str(source)


def _open(path: Path):
    """The MinariDataset at `path`, its metadata; DatasetError naming what is unreadable."""
    minari = _minari()
    try:
        dataset = minari.MinariDataset(path)
        return dataset, dataset.storage.metadata
    except Exception as e:  # OSError of a truncated HDF5 file, JSON, Minari's own errors...
        raise DatasetError(f"{path}: unreadable Minari dataset ({type(e).__name__}: {e})") from None


def import_minari(source, out, progress: bool = True) -> Manifest:
    """Import the Minari dataset `source` (a dataset id or a folder) as a cfcclone dataset at
    `out`; returns its manifest. Each episode becomes a shard; see the module doc.

    Args:
        source: a local Minari dataset id (under MINARI_DATASETS_PATH) or its folder.
        out: the dataset folder to create (it must not exist).
    """
    out = Path(out)
    path, name = _data_path(source)
    dataset, metadata = _open(path)
    where = f"Minari dataset {name}"
    spec, saved = dataset.spec.env_spec, metadata.get("cfcclone", {}).get("env")
    try:
        if is_ale(spec):
            env = env_config_of(spec, saved)
            table = action_map(dataset.action_space, spec, env.game)
            obs_spec, action_spec, meanings = ObsSpec(), ActionSpec(), action_meanings(env.game)
            shape = dataset.observation_space.shape
            kind = "preprocessed" if shape[-1] == env.screen_size else "screen"
        else:
            env, obs_spec, action_spec, meanings = gym_side(dataset, saved)
            table, kind = None, obs_spec.kind
    except (DatasetError, ValueError) as e:
        raise DatasetError(f"{where}: {e}") from None
    bar = tqdm(total=dataset.total_steps, desc="import minari", unit="step", unit_scale=True,
               disable=not progress)  # fmt: skip
    with atomic_path(out, directory=True, overwrite=False) as tmp, bar:
        for i, episode in enumerate(_episodes(dataset, path)):
            where_i = f"{where}, episode {i}"
            if table is None:
                frames, actions, rewards, segment = gym_episode(episode, obs_spec, where_i)
            else:
                frames, actions, rewards, segment = ale_episode(episode, env, table, where_i)
            if len(actions):
                write_shard(tmp, f"e{i:06d}", frames, actions, rewards, [segment], env.game)
            bar.update(len(actions))
        manifest = Manifest(
            game=env.game,
            env=env,
            obs=obs_spec,
            action=action_spec,
            action_meanings=meanings,
            expert=metadata.get("algorithm_name") or f"minari:{metadata['dataset_id']}",
            source="minari",
            minari={
                "dataset_id": metadata["dataset_id"],
                "env_id": spec.id,
                "minari_version": metadata.get("minari_version"),
                "observations": kind,
            },
        ).summarized(tmp)
        if manifest.steps == 0:
            raise DatasetError(f"{where}: no steps to import")
        manifest.write(tmp)
    return manifest


def _episodes(dataset, path: Path):
    """(episode data, its seed) in order; DatasetError where the data cannot be read."""
    storage = dataset.storage
    try:
        for i in dataset.episode_indices:
            (meta,) = storage.get_episode_metadata([i])
            yield dataset[int(i)], meta.get("seed")
    except DatasetError:
        raise
    except Exception as e:  # h5py's KeyError/OSError on a damaged file, ...
        raise DatasetError(f"{path}: unreadable episode ({type(e).__name__}: {e})") from None


def export_minari(root, dataset_id: str, datasets: str | None = None, progress: bool = True):
    """Write the cfcclone dataset at `root` as the Minari dataset `dataset_id`; returns its
    folder. Each segment becomes an episode; see the module doc.

    Args:
        root: a cfcclone dataset folder.
        dataset_id: the Minari id to create, e.g. cfcclone/breakout/tracker-v0.
        datasets: the Minari datasets folder (default MINARI_DATASETS_PATH, else ~/.minari).
    """
    minari = _minari()
    from minari.dataset.minari_dataset import parse_dataset_id
    from minari.dataset.minari_storage import MinariStorage

    try:
        namespace = parse_dataset_id(dataset_id)[0]
    except ValueError as e:  # minari's own errors name the expected form
        raise ValueError(f"bad dataset id {dataset_id!r}: {e}") from None
    except TypeError:  # minari 0.5 where the version is missing
        raise ValueError(
            f"bad dataset id {dataset_id!r}: expected (namespace/)name-v(version), "
            "e.g. cfcclone/breakout/tracker-v0"
        ) from None
    manifest = Manifest.read(root)
    shards = manifest.shard_dirs(root)
    env = manifest.env
    if env.kind == "gym":
        env_spec, observation_space, action_space = gym_spaces_of(env, manifest.obs)
    else:
        size = env.screen_size
        observation_space = gym.spaces.Box(0, 255, (size, size), np.uint8)
        action_space = gym.spaces.Discrete(len(manifest.action_meanings))
        env_spec = env_spec_of(env)
    from minari.storage.datasets_root_dir import get_dataset_path

    base = Path(datasets) if datasets else get_dataset_path()
    target = base / dataset_id
    metadata = {
        "dataset_id": dataset_id,
        "algorithm_name": manifest.expert,
        "description": f"cfcclone dataset of {manifest.game}, expert {manifest.expert}",
        "minari_version": minari.__version__,
        "cfcclone": {"env": env.to_dict(), "expert": manifest.expert, "source": manifest.source},
    }
    bar = tqdm(total=manifest.steps, desc="export minari", unit="step", unit_scale=True,
               disable=not progress)  # fmt: skip
    with atomic_path(target, directory=True, overwrite=False) as tmp, bar:
        storage = MinariStorage.new(
            tmp / "data",
            observation_space=observation_space,
            action_space=action_space,
            env_spec=env_spec,
            data_format="hdf5",
            jpeg_encoding=False,
        )
        storage.update_metadata(metadata)
        storage.update_episodes(_buffers(shards, manifest.n_actions, observation_space,
                                         action_space, bar))  # fmt: skip
    if namespace is not None:
        _ensure_namespace(base, namespace)
    return target


def _buffers(shards: list[Path], n_actions: int | None, observation_space, action_space, bar):
    """One Minari EpisodeBuffer per segment, read shard by shard, in the spaces' dtypes."""
    from minari.data_collector.episode_buffer import EpisodeBuffer

    for shard in shards:
        meta, arrays = open_shard(shard, n_actions)
        for s in meta["segments"]:
            frames = arrays["frames"][
                s.frame_offset + s.prefix : s.frame_offset + s.prefix + s.length
            ]
            steps = slice(s.step_offset, s.step_offset + s.length)
            rewards = np.asarray(arrays["rewards"][steps], np.float64)
            done = np.zeros(s.length, bool)
            yield EpisodeBuffer(
                seed=s.seed,
                observations=np.concatenate([frames, frames[-1:]]).astype(
                    observation_space.dtype, copy=False
                ),
                actions=np.asarray(arrays["actions"][steps], action_space.dtype),
                rewards=rewards,
                terminations=np.concatenate([done[:-1], [s.complete]]),
                truncations=np.concatenate([done[:-1], [not s.complete]]),
            )
            bar.update(s.length)


def _ensure_namespace(base: Path, namespace: str) -> None:
    """Minari's namespace metadata files (read by `list_local_datasets`) where missing."""
    from minari.namespace import NAMESPACE_METADATA_FILENAME

    parts = namespace.split("/")
    for k in range(1, len(parts) + 1):
        path = base.joinpath(*parts[:k]) / NAMESPACE_METADATA_FILENAME
        if not path.exists():
            atomic_write_text(path, "{}")
