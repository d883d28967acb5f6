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

Any other env is a gymnasium env (MuJoCo's sets, `mujoco/hopper/expert-v0`, are these): its
id, and the kwargs where they differ from the registered ones, become the EnvConfig (stack 1;
a policy restacks with `--view-stack`). Observations are state vectors (float64 in Minari,
float32 in shards), actions `Box` vectors or indices; the specs come from the dataset's spaces,
which must be the env's. Its export writes the env's own spaces and EnvSpec.

Both write into a temporary folder renamed into place when finished: an error leaves nothing.
Minari and h5py come with the 'minari' extra.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import ale_py
import cv2
import gymnasium as gym
import numpy as np
from tqdm import tqdm

from cfcclone.atomic import atomic_path, atomic_write_text
from cfcclone.data.format import DatasetError, Segment, check_finite, open_shard, write_shard
from cfcclone.data.manifest import Manifest
from cfcclone.envs import EnvConfig, _gym_id, action_meanings, check_game
from cfcclone.spaces import ActionSpec, ObsSpec, specs_of

ALE_ENTRY = "ale_py.env:AtariEnv"
PREPROCESSING = "gymnasium.wrappers.atari_preprocessing:AtariPreprocessing"
LUMA = (2989, 5870, 1140)
"""ALE's grayscale: round(0.2989 R + 0.5870 G + 0.1140 B), in integers (exact)."""


def _minari():
    try:
        import minari
    except ImportError:
        raise ValueError("Minari datasets need minari: pip install 'cfcclone[minari]'") from None
    return minari


def gray(rgb: np.ndarray) -> np.ndarray:
    """ALE's grayscale of RGB frames (..., 3) uint8: what `ale.getScreenGrayscale()` gives."""
    x = rgb.astype(np.int32)
    y = x[..., 0] * LUMA[0] + x[..., 1] * LUMA[1] + x[..., 2] * LUMA[2]
    return ((y + 5000) // 10000).astype(np.uint8)


def preprocess(obs: np.ndarray, size: int) -> np.ndarray:
    """Observations (T, ...) as single frames (T, size, size) uint8, as the envs make them:
    RGB (T, H, W, 3) and grayscale (T, H, W) screens are converted and resized; preprocessed
    frames (T, size, size) are kept; stacks (T, k, size, size) give their newest frame."""
    obs = np.asarray(obs)
    if obs.dtype != np.uint8:
        raise DatasetError(f"expected uint8 observations, got {obs.dtype}")
    if obs.ndim == 4 and obs.shape[-1] == 1:
        obs = obs[..., 0]
    if obs.ndim == 4 and obs.shape[-1] == 3:
        obs = np.stack([gray(frame) for frame in obs]) if len(obs) else obs[..., 0]
    elif obs.ndim == 4 and obs.shape[2:] == (size, size):
        return np.ascontiguousarray(obs[:, -1])
    if obs.ndim != 3:
        raise DatasetError(
            f"expected RGB (H, W, 3), grayscale (H, W) or preprocessed ({size}, {size}) "
            f"observations, got {obs.shape[1:]}"
        )
    if obs.shape[1:] == (size, size):
        return np.ascontiguousarray(obs)
    return np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in obs])


def env_config_of(spec, saved: dict | None = None) -> EnvConfig:
    """The EnvConfig of a Minari dataset's EnvSpec (and of the EnvConfig cfcclone saved in
    its metadata, where it exported it); DatasetError where the env is not one it can match."""
    if spec is None:
        raise DatasetError("the dataset has no env spec, so its game and preprocessing are unknown")
    if spec.entry_point != ALE_ENTRY or "game" not in spec.kwargs:
        raise DatasetError(f"env {spec.id} is not an ALE game (entry point {spec.entry_point})")
    kw = spec.kwargs
    game = check_game(kw["game"])
    if kw.get("obs_type", "rgb") == "ram":
        raise DatasetError(f"env {spec.id} observes the RAM; cfcclone clones from frames")
    skip = kw.get("frameskip", 4)
    if not isinstance(skip, int):
        raise DatasetError(f"env {spec.id} skips a random number of frames ({skip})")
    wrappers = {w.name: w for w in spec.additional_wrappers or ()}
    unknown = sorted(set(wrappers) - {"AtariPreprocessing", "FrameStackObservation"})
    if unknown:
        raise DatasetError(f"env {spec.id} has wrappers cfcclone cannot replay: {unknown}")
    pre = wrappers["AtariPreprocessing"].kwargs if "AtariPreprocessing" in wrappers else None
    fields = dict(game=game, max_pool=False, noop_max=0, fire=False)
    if pre is not None:
        bad = [k for k, ok in [("terminal_on_life_loss", False), ("scale_obs", False),
                               ("grayscale_obs", True)] if pre.get(k, ok) != ok]  # fmt: skip
        if bad:
            raise DatasetError(f"env {spec.id}: AtariPreprocessing with {bad} is not supported")
        size = pre.get("screen_size", 84)
        size = size[0] if isinstance(size, (tuple, list)) and size[0] == size[1] else size
        pooled = pre.get("frame_skip", 4)
        fields.update(max_pool=pooled > 1, noop_max=pre.get("noop_max", 30), screen_size=size)
        skip *= pooled
    frames = kw.get("max_num_frames_per_episode") or 108_000
    if spec.max_episode_steps:
        frames = min(frames, spec.max_episode_steps * skip)
    config = EnvConfig(
        frame_skip=skip,
        sticky_actions=float(kw.get("repeat_action_probability", 0.25)),
        max_episode_frames=frames,
        **fields,
    )
    if saved is not None:  # ours: it also knows the FIRE protocol and the stack
        ours = EnvConfig.from_dict(saved, "metadata cfcclone.env")
        if dataclasses.replace(ours, fire=False, stack=config.stack) != config:
            raise DatasetError(f"its metadata's EnvConfig {ours} disagrees with its env spec")
        config = ours
    return config


def action_map(space, spec, game: str) -> np.ndarray:
    """Dataset action -> index in the game's minimal set (-1: not in it)."""
    minimal = action_meanings(game)
    if not isinstance(space, gym.spaces.Discrete):
        raise DatasetError(f"expected a Discrete action space, got {space}")
    if spec.kwargs.get("full_action_space", False):
        meanings = [a.name for a in ale_py.Action]
        if space.n != len(meanings):
            raise DatasetError(f"full action set of {len(meanings)}, got {space.n} actions")
        return np.array([minimal.index(m) if m in minimal else -1 for m in meanings])
    if space.n != len(minimal):
        raise DatasetError(
            f"{space.n} actions, but {game}'s minimal set has {len(minimal)} ({minimal})"
        )
    return np.arange(space.n)


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
        if _is_ale(spec):
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
                frames, actions, rewards, segment = _gym_episode(episode, obs_spec, where_i)
            else:
                frames, actions, rewards, segment = _episode(episode, env, table, where_i)
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


def _is_ale(spec) -> bool:
    return spec is not None and spec.entry_point == ALE_ENTRY


def gym_side(dataset, saved: dict | None = None):
    """(EnvConfig, ObsSpec, ActionSpec, action meanings) of a Minari dataset of a gymnasium
    env (not ALE); DatasetError where its env or its spaces are not ones cfcclone replays."""
    from cfcclone.gym_env import gym_specs

    spec = dataset.spec.env_spec
    if spec is None:
        raise DatasetError("the dataset has no env spec, so its env is unknown")
    if spec.additional_wrappers:
        names = [w.name for w in spec.additional_wrappers]
        raise DatasetError(f"env {spec.id} has wrappers cfcclone cannot replay: {names}")
    try:
        registered = gym.spec(spec.id)
    except gym.error.Error as e:
        raise DatasetError(f"env {spec.id} is not a registered gymnasium env ({e})") from None
    kwargs = {k: v for k, v in spec.kwargs.items()
              if registered.kwargs.get(k, ...) != v and k != "render_mode"}  # fmt: skip
    if spec.max_episode_steps != registered.max_episode_steps:
        kwargs["max_episode_steps"] = spec.max_episode_steps
    env = EnvConfig(game=spec.id, stack=1, env_kwargs=kwargs or None)
    if saved is not None:  # ours: it also knows the stack, the mask, pixels
        ours = EnvConfig.from_dict(saved, "metadata cfcclone.env")
        if (ours.game, ours.env_kwargs) != (env.game, env.env_kwargs):
            raise DatasetError(f"its metadata's EnvConfig {ours} disagrees with its env spec")
        env = ours
    pixels = len(dataset.observation_space.shape) == 2 and env.pixels
    obs, action = specs_of(dataset.observation_space, dataset.action_space, pixels)
    env_obs, env_action, meanings = gym_specs(env)
    if (obs, action) != (env_obs, env_action):
        raise DatasetError(
            f"its spaces ({dataset.observation_space}, {dataset.action_space}) are not "
            f"{spec.id}'s ({env_obs}, {env_action.describe(meanings)})"
        )
    return env, obs, action, meanings


def _gym_episode(item, obs_spec: ObsSpec, where: str):
    """A gymnasium episode's observations (T, d) float32 or (T, S, S) uint8, actions, rewards
    and segment; DatasetError naming the episode where a value is NaN or inf."""
    episode, seed = item
    steps = len(episode.actions)
    obs = np.asarray(episode.observations)[:steps].astype(obs_spec.dtype, copy=False)
    actions = np.asarray(episode.actions)
    actions = actions.astype(np.float32 if actions.ndim == 2 else np.int64, copy=False)
    rewards = np.asarray(episode.rewards, dtype=np.float32)
    check_finite(where, observations=obs, actions=actions, rewards=rewards)
    complete = bool(steps and episode.terminations[-1])
    segment = Segment(0, 0, steps, complete=complete, ret=float(rewards.sum()),
                      seed=None if seed is None else int(seed))  # fmt: skip
    return obs, actions, rewards, segment


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


def _episode(item, env: EnvConfig, table: np.ndarray, where: str):
    episode, seed = item
    steps = len(episode.actions)
    try:
        frames = preprocess(np.asarray(episode.observations)[:steps], env.screen_size)
    except DatasetError as e:
        raise DatasetError(f"{where}: {e}") from None
    actions = table[np.asarray(episode.actions, dtype=np.int64)]
    if (actions < 0).any():
        bad = int(np.asarray(episode.actions)[actions < 0][0])
        raise DatasetError(
            f"{where}: action {bad} ({ale_py.Action(bad).name}) is not in {env.game}'s "
            f"minimal set {action_meanings(env.game)}"
        )
    rewards = np.asarray(episode.rewards, dtype=np.float32)
    complete = bool(steps and episode.terminations[-1])
    segment = Segment(0, 0, steps, complete=complete, ret=float(rewards.sum()),
                      seed=None if seed is None else int(seed))  # fmt: skip
    return frames, actions, rewards, segment


def env_spec_of(config: EnvConfig):
    """The EnvSpec of ALE v5 with gymnasium's AtariPreprocessing that makes `config`'s
    single frames (what `recover_environment()` builds for a user of the export)."""
    from gymnasium.envs.registration import WrapperSpec

    pooled = config.frame_skip if config.max_pool else 1
    spec = gym.spec(_gym_id(config.game))
    kwargs = dict(spec.kwargs, frameskip=config.frame_skip // pooled,
                  repeat_action_probability=config.sticky_actions,
                  max_num_frames_per_episode=config.max_episode_frames)  # fmt: skip
    wrapper = WrapperSpec(
        "AtariPreprocessing",
        PREPROCESSING,
        dict(
            noop_max=config.noop_max,
            frame_skip=pooled,
            screen_size=config.screen_size,
            terminal_on_life_loss=False,
            grayscale_obs=True,
            scale_obs=False,
        ),  # fmt: skip
    )
    return dataclasses.replace(spec, kwargs=kwargs, additional_wrappers=(wrapper,))


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


def gym_spaces_of(config: EnvConfig, obs: ObsSpec):
    """The EnvSpec of a gymnasium dataset's env (its kwargs in it), and the observation and
    action spaces a Minari dataset of it holds: the env's own (float64 for MuJoCo states), or
    the frames' uint8 Box where it is watched through pixels."""
    from cfcclone.gym_env import gym_make

    kwargs = dict(config.env_kwargs or {})
    steps = kwargs.pop("max_episode_steps", None)
    spec = gym.spec(config.game)
    spec = dataclasses.replace(
        spec,
        kwargs={**spec.kwargs, **kwargs},
        max_episode_steps=steps or spec.max_episode_steps,
    )
    env = gym_make(dataclasses.replace(config, pixels=False), None)
    try:
        observation_space, action_space = env.observation_space, env.action_space
    finally:
        env.close()
    if obs.kind == "image":
        size = config.screen_size
        observation_space = gym.spaces.Box(0, 255, (size, size), np.uint8)
    return spec, observation_space, action_space


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
