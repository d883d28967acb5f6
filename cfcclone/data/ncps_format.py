"""Convert between the NCP tutorial's data format and ours (see `cfcclone.data.format`).

The tutorial's format is a folder of `{split}_{i:05d}.npz` files, split in train/val, each ONE
window: `obs` (T, 84, 84, 4) uint8, channel-last, obs[t, :, :, 3] the newest frame, and
`actions` (T,) integer (T = 32). Every frame is stored 4 times, once in each stack it is in.

`import_ncps` stores each frame once. A file's steps are cut into segments of consecutive
stacks: step t continues step t-1 where obs[t, :, :, :3] == obs[t-1, :, :, 1:]. A segment
stores as its prefix the 3 older frames of its first stack, then the newest frame of each
step, so that the dataset rebuilds every stack byte for byte, also for files whose stacks
are not consecutive (each step is then its own segment of 4 frames: no saving). `export_ncps`
writes the fixed windows of a `SequenceDataset` as tutorial files; for imported data every
file of 32 consecutive stacks is one segment and one window, so export -> import -> export
gives the same files.

Both write a whole dataset into a temporary sibling of `out` that is renamed to `out` only
when finished (`cfcclone.atomic`), and refuse an existing `out`: an error leaves nothing.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from tqdm import tqdm

from cfcclone.atomic import atomic_path
from cfcclone.data.dataset import SequenceDataset
from cfcclone.data.format import DatasetError, Segment, write_shard
from cfcclone.data.manifest import Manifest
from cfcclone.envs import EnvConfig, action_meanings

SPLITS = ("train", "val")
FILES_PER_SHARD = 256
_NAME = re.compile(r"^(train|val)_(.*)\.npz$")


def _file_key(path: Path) -> tuple:
    """Sort key: train before val, then numerically by index where the suffix is a number."""
    split, index = _NAME.match(path.name).groups()
    number = int(index) if index.isdigit() else -1
    return SPLITS.index(split), number < 0, number, index


def list_ncps_files(src: Path) -> list[Path]:
    """The tutorial files `src/{train,val}_*.npz`, train first, each split in index order."""
    return sorted((p for p in Path(src).glob("*.npz") if _NAME.match(p.name)), key=_file_key)


def load_ncps_file(path: Path, n_actions: int, size: int = 84, stack: int = 4):
    """obs (T, size, size, stack) uint8 and actions (T,) int64 of one tutorial file, checked;
    raises DatasetError naming the file and what is wrong with it."""
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in ("obs", "actions") if k not in f.files]
            if missing:
                raise DatasetError(f"{path}: missing array(s) {missing}; it holds {f.files}")
            obs, actions = f["obs"], f["actions"]
    except DatasetError:
        raise
    except Exception as e:  # zipfile.BadZipFile, OSError, EOFError, ValueError, zlib.error...
        raise DatasetError(f"{path}: unreadable npz ({type(e).__name__}: {e})") from None
    if obs.dtype != np.uint8 or obs.shape[1:] != (size, size, stack) or len(obs) < 1:
        raise DatasetError(
            f"{path}: expected obs (T, {size}, {size}, {stack}) uint8 with T >= 1, "
            f"got {obs.shape} {obs.dtype}"
        )
    if not np.issubdtype(actions.dtype, np.integer) or actions.shape != (len(obs),):
        raise DatasetError(
            f"{path}: expected actions ({len(obs)},) integer, got {actions.shape} {actions.dtype}"
        )
    if actions.min() < 0 or actions.max() >= n_actions:
        raise DatasetError(
            f"{path}: actions must lie in [0, {n_actions}), got {actions.min()}..{actions.max()}"
        )
    return obs, actions.astype(np.int64)


def split_segments(obs: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) step ranges of the runs of consecutive stacks in obs (T, H, W, stack)."""
    cont = (obs[1:, :, :, :-1] == obs[:-1, :, :, 1:]).all(axis=(1, 2, 3))
    starts = [0, *(np.flatnonzero(~cont) + 1).tolist()]
    return list(zip(starts, [*starts[1:], len(obs)], strict=True))


def _pack(files: list[Path], n_actions: int, size: int, stack: int):
    """One shard's arrays from tutorial files: frames (F, size, size) uint8, actions (S,)
    int64 and its segments, each file cut into runs of consecutive stacks (prefix stack-1)."""
    frames, actions, segments = [], [], []
    n_frames = n_steps = 0
    for path in files:
        obs, acts = load_ncps_file(path, n_actions, size, stack)
        split = _NAME.match(path.name).group(1)
        for t0, t1 in split_segments(obs):
            first = obs[t0]  # (size, size, stack): its older frames are the prefix
            frames += [first[:, :, :-1].transpose(2, 0, 1), obs[t0:t1, :, :, -1]]
            actions.append(acts[t0:t1])
            reset = bool((first == first[:, :, :1]).all())  # padded at an episode start
            segments.append(
                Segment(
                    n_frames,
                    n_steps,
                    t1 - t0,
                    prefix=stack - 1,
                    episode_start=reset,
                    complete=False,
                    ret=0.0,
                    split=split,
                )
            )
            n_frames += stack - 1 + t1 - t0
            n_steps += t1 - t0
    return np.concatenate(frames), np.concatenate(actions), segments


def import_ncps(src, out, game: str = "breakout", progress: bool = True) -> Manifest:
    """Import the tutorial files in `src` as a cfcclone dataset at `out`; returns its manifest.

    Shards hold FILES_PER_SHARD files each, in file order; each segment keeps the split of its
    file name. Frames are (F, 84, 84) uint8 single frames, actions (S,) uint8, rewards (S,)
    float32 zeros (the tutorial's format has no rewards).

    Args:
        src: a folder of the tutorial's {train,val}_*.npz files.
        out: the dataset folder to create (it must not exist).
        game: the game the files were recorded on.
    """
    src, out = Path(src), Path(out)
    files = list_ncps_files(src)
    if not files:
        raise DatasetError(f"{src}: no tutorial files ({{train,val}}_*.npz) found")
    config = EnvConfig(game=game)
    meanings = action_meanings(game)
    bar = tqdm(total=len(files), desc="import ncps", unit="file", disable=not progress)
    with atomic_path(out, directory=True, overwrite=False) as tmp, bar:
        for first in range(0, len(files), FILES_PER_SHARD):
            chunk = files[first : first + FILES_PER_SHARD]
            frames, actions, segments = _pack(
                chunk, len(meanings), config.screen_size, config.stack
            )
            rewards = np.zeros(len(actions), np.float32)
            name = f"{first // FILES_PER_SHARD:06d}"
            write_shard(tmp, name, frames, actions, rewards, segments, game)
            bar.update(len(chunk))
        manifest = Manifest(
            game=game,
            env=config,
            action_meanings=meanings,
            source="ncps",
            expert="ncps-import",
            files={s: sum(_NAME.match(p.name).group(1) == s for p in files) for s in SPLITS},
        ).summarized(tmp)
        manifest.write(tmp)
    return manifest


def export_ncps(root, out, seq_len: int = 32, progress: bool = True) -> dict:
    """Write the fixed windows of the dataset at `root` as tutorial files at `out`.

    For each split, window i of `SequenceDataset(root, seq_len, split)` becomes
    `{split}_{i:05d}.npz` with obs (seq_len, 84, 84, 4) uint8 (channel-last, channel 3 the
    newest frame) and actions (seq_len,) int64, saved uncompressed as the tutorial does.
    Returns the number of files of each split and the steps written.

    Args:
        root: a cfcclone dataset folder.
        out: the folder of tutorial files to create (it must not exist).
        seq_len: steps per file (the tutorial's windows are 32).
    """
    root, out = Path(root), Path(out)
    datasets = {split: SequenceDataset(root, seq_len, split=split) for split in SPLITS}
    counts = {split: len(ds) for split, ds in datasets.items()}
    bar = tqdm(total=sum(counts.values()), desc="export ncps", unit="file", disable=not progress)
    with atomic_path(out, directory=True, overwrite=False) as tmp, bar:
        for split, ds in datasets.items():
            for i in range(len(ds)):
                stacks, actions, _ = ds[i]  # (T, 4, 84, 84) uint8, (T,) int64
                obs = np.ascontiguousarray(stacks.numpy().transpose(0, 2, 3, 1))
                actions = actions.numpy().astype(np.int64)
                np.savez(tmp / f"{split}_{i:05d}.npz", obs=obs, actions=actions)
                bar.update()
    return {**counts, "steps": seq_len * sum(counts.values())}
