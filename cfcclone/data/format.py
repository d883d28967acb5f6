"""On-disk dataset format (version 1): single frames in shards, written atomically.

    DIR/manifest.json            a `Manifest`: game, EnvConfig, expert, seeds, counts, checksums
    DIR/shards/<name>/frames.npy (F, 84, 84) uint8, single preprocessed frames
    DIR/shards/<name>/actions.npy (S,) uint8, the action ALE executed at each step
    DIR/shards/<name>/rewards.npy (S,) float32, the unclipped reward of each step
    DIR/shards/<name>/meta.json  its segments, with the sha256 of each array file

A shard holds one or more segments. A segment is a run of consecutive steps of one episode:
a whole episode in collected data, or one 32-step window in data imported from the tutorial's
format. Segment k owns `prefix + length` frames from `frame_offset` and `length` steps from
`step_offset`. Its step t sees the stack of frames max(prefix + t - 3 + i, 0), i = 0..3: with
prefix 0 the first frame pads the stack, exactly as the env pads it at reset; an imported
window carries the 3 frames before its first step as its prefix.

`write_shard` is the one shard writer: collection and DAgger reach it through `EpisodeWriter`
(per-env episode buffers), the tutorial import directly. A shard is written into a temporary
directory that is renamed into place (`cfcclone.atomic`), so a crash leaves either a whole
shard or none; temporaries are ignored and swept by the next writer. The manifest is a typed,
versioned `Manifest`, loaded strictly: an unknown or missing field is an error.
Frames take 7,056 bytes a step plus 5 for action and reward, against 28,224 for the tutorial's
format, which stores every frame once in each of the 4 stacks it belongs to.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from cfcclone import atomic
from cfcclone.config import Config, check
from cfcclone.envs import EnvConfig

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ARRAYS = ("frames", "actions", "rewards")


class DatasetError(ValueError):
    """A dataset file is missing, corrupt or of the wrong shape; the message names it."""


@dataclass(frozen=True)
class Segment:
    """Consecutive steps of one episode within a shard."""

    frame_offset: int
    step_offset: int
    length: int
    prefix: int = 0
    """Frames stored before the first step, for its stack (0: pad with the first frame)."""
    episode_start: bool = True
    """Whether step 0 starts an episode (the recurrent state is zeroed there)."""
    complete: bool = True
    """Whether the episode ended in the env (False: cut by the frame budget or a window)."""
    ret: float = 0.0
    """Sum of the unclipped rewards over the segment's steps."""
    seed: int | None = None
    split: str | None = None
    """'train' or 'val' where the source fixed it (tutorial data); None lets the dataset split."""


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_shard(
    root: Path,
    name: str,
    frames: np.ndarray,
    actions: np.ndarray,
    rewards: np.ndarray,
    segments: list[Segment],
) -> dict:
    """Write one shard atomically under root/shards/name; returns its meta."""
    _check_arrays(name, frames, actions, rewards, segments)
    shards = Path(root) / "shards"
    arrays = {
        "frames": frames.astype(np.uint8, copy=False),
        "actions": actions.astype(np.uint8, copy=False),
        "rewards": rewards.astype(np.float32, copy=False),
    }
    with atomic.atomic_path(shards / name, directory=True, overwrite=False) as tmp:
        for key, arr in arrays.items():
            with open(tmp / f"{key}.npy", "wb") as f:
                np.save(f, arr)
                f.flush()
                os.fsync(f.fileno())
        meta = {
            "name": name,
            "frames": int(len(frames)),
            "steps": int(len(actions)),
            "segments": [asdict(s) for s in segments],
            "sha256": {key: sha256(tmp / f"{key}.npy") for key in ARRAYS},
        }
        (tmp / "meta.json").write_text(json.dumps(meta))
    return meta


def _check_arrays(name, frames, actions, rewards, segments) -> None:
    if frames.ndim != 3 or frames.dtype != np.uint8:
        raise DatasetError(
            f"shard {name}: expected frames (F, H, W) uint8, got {frames.shape} {frames.dtype}"
        )
    if actions.shape != rewards.shape or actions.ndim != 1:
        raise DatasetError(
            f"shard {name}: actions {actions.shape} and rewards {rewards.shape} differ"
        )
    if actions.size and (actions.min() < 0 or actions.max() > 255):
        raise DatasetError(
            f"shard {name}: actions must fit uint8, got {actions.min()}..{actions.max()}"
        )
    frames_used = sum(s.prefix + s.length for s in segments)
    steps_used = sum(s.length for s in segments)
    if frames_used != len(frames) or steps_used != len(actions):
        raise DatasetError(
            f"shard {name}: segments cover {frames_used} frames and {steps_used} steps, "
            f"arrays hold {len(frames)} and {len(actions)}"
        )


def sweep_temporaries(root: Path) -> None:
    """Remove the half-written shards and files a crash left behind."""
    root = Path(root)
    atomic.sweep_temporaries(root)
    if (root / "shards").is_dir():
        atomic.sweep_temporaries(root / "shards")
        for tmp in (root / "shards").glob("*.tmp"):  # the temporaries of earlier versions
            shutil.rmtree(tmp, ignore_errors=True)


def read_shard_meta(shard_dir: Path) -> dict:
    path = Path(shard_dir) / "meta.json"
    try:
        meta = json.loads(path.read_text())
        meta["segments"] = [Segment(**s) for s in meta["segments"]]
    except FileNotFoundError:
        raise DatasetError(f"{path}: missing; the shard is incomplete") from None
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise DatasetError(f"{path}: corrupt shard metadata ({e})") from None
    return meta


def open_shard(shard_dir: Path, verify: bool = False) -> tuple[dict, dict[str, np.ndarray]]:
    """Memory-map one shard's arrays, checking their shapes (and checksums with `verify`)."""
    shard_dir = Path(shard_dir)
    meta = read_shard_meta(shard_dir)
    arrays = {}
    for key in ARRAYS:
        path = shard_dir / f"{key}.npy"
        if verify and sha256(path) != meta["sha256"][key]:
            raise DatasetError(f"{path}: checksum mismatch; the file is corrupt")
        try:
            arrays[key] = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as e:
            raise DatasetError(f"{path}: unreadable array ({e})") from None
    expected = {"frames": meta["frames"], "actions": meta["steps"], "rewards": meta["steps"]}
    for key, n in expected.items():
        if len(arrays[key]) != n:
            raise DatasetError(f"{shard_dir / key}.npy: expected {n} rows, got {len(arrays[key])}")
    return meta, arrays


def list_shards(root: Path) -> list[Path]:
    """Finished shard directories under root/shards, in name order."""
    shards = Path(root) / "shards"
    if not shards.is_dir():
        return []
    return sorted(
        p
        for p in shards.iterdir()
        if p.is_dir() and not p.name.endswith(".tmp") and not p.name.startswith(".")
    )


Source = Literal["collect", "dagger", "ncps", "synthetic"]
Status = Literal["collecting", "complete"]


@dataclass(frozen=True)
class Manifest(Config):
    """DIR/manifest.json: what a dataset holds and how it was made (format version 1)."""

    game: str
    """The ALE game, as in EnvConfig."""
    env: EnvConfig
    """The preprocessing every frame went through: what a clone must be evaluated on."""
    action_meanings: list[str]
    """The game's minimal action set; actions are indices into it."""
    expert: str
    """Who chose the actions: planner, tracker, a checkpoint, module:function, ..."""
    source: Source = "collect"
    """How the data was made: collect, dagger (aggregated), ncps (tutorial import), synthetic."""
    status: Status = "complete"
    """collecting while a collection runs (resume it), then complete."""
    seed: int | None = None
    """The collection seed (episode seeds derive from it)."""
    workers: int | None = None
    """Collection worker processes (resume needs the same count)."""
    frames_target: int | None = None
    """The frames a collection was asked for."""
    files: dict | None = None
    """Tutorial import: the number of train and val files read."""
    dagger: dict | None = None
    """DAgger aggregate: what the run started from."""
    shards: dict = field(default_factory=dict)
    """Shard name -> sha256 of its frames, actions and rewards."""
    frames_stored: int = 0
    steps: int = 0
    segments: int = 0
    episodes_complete: int = 0
    format_version: int = FORMAT_VERSION

    def __post_init__(self):
        self.check_choices()
        check(
            self.format_version == FORMAT_VERSION,
            f"expected format_version {FORMAT_VERSION}, got {self.format_version}",
        )
        check(self.env.game == self.game, f"game {self.game!r} but env.game {self.env.game!r}")
        check(len(self.action_meanings) >= 1, "expected at least one action meaning")

    @classmethod
    def read(cls, root: str | Path) -> Manifest:
        """The manifest of dataset `root`; DatasetError naming the file where it is missing,
        corrupt, or holds unknown or missing fields."""
        path = Path(root) / MANIFEST
        if not path.exists():
            raise DatasetError(f"{path}: no manifest; is {root} a cfcclone dataset?")
        try:
            return cls.from_dict(json.loads(path.read_text()), str(path))
        except json.JSONDecodeError as e:
            raise DatasetError(f"{path}: corrupt manifest ({e})") from None
        except ValueError as e:
            raise DatasetError(str(e)) from None

    def write(self, root: str | Path) -> None:
        """Write atomically to root/manifest.json."""
        atomic.atomic_write_text(
            Path(root) / MANIFEST, json.dumps(self.to_dict(), indent=1, sort_keys=True)
        )

    def summarized(self, root: str | Path, **changes) -> Manifest:
        """A copy with the counts and checksums of root's finished shards, and `changes`."""
        return dataclasses.replace(self, **summarize(root), **changes)


def read_manifest(root: Path) -> Manifest:
    return Manifest.read(root)


def summarize(root: Path) -> dict:
    """Counts and checksums over the finished shards, for the manifest."""
    metas = [read_shard_meta(p) for p in list_shards(root)]
    segments = [s for m in metas for s in m["segments"]]
    return {
        "shards": {m["name"]: m["sha256"] for m in metas},
        "frames_stored": sum(m["frames"] for m in metas),
        "steps": sum(m["steps"] for m in metas),
        "segments": len(segments),
        "episodes_complete": sum(s.complete and s.episode_start for s in segments),
    }


class EpisodeWriter:
    """Per-env episode buffers; `end(i)` writes env i's episode so far as one shard.

    `add` takes each step's observations (N, stack, H, W) (their newest frames are stored),
    the actions to record (N,) and the rewards (N,); `names(env, count)` names env's count-th
    shard. Collection and DAgger write through it.
    """

    def __init__(self, root: str | Path, num_envs: int, names, split: str | None = None):
        self.root, self.names, self.split = Path(root), names, split
        self.frames: list[list] = [[] for _ in range(num_envs)]
        self.actions: list[list] = [[] for _ in range(num_envs)]
        self.rewards: list[list] = [[] for _ in range(num_envs)]
        self.count = [0] * num_envs

    def add(self, obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray) -> None:
        for i in range(len(obs)):
            self.frames[i].append(obs[i, -1])
            self.actions[i].append(int(actions[i]))
            self.rewards[i].append(float(rewards[i]))

    def steps(self, i: int) -> int:
        """Steps buffered for env i."""
        return len(self.actions[i])

    def end(self, i: int, complete: bool, seed: int | None = None) -> dict | None:
        """Write env i's buffered steps as a shard (none where empty); returns its meta."""
        if not self.actions[i]:
            return None
        rewards = np.asarray(self.rewards[i], np.float32)
        segment = Segment(
            0,
            0,
            len(rewards),
            complete=complete,
            ret=float(rewards.sum()),
            seed=seed,
            split=self.split,
        )
        meta = write_shard(
            self.root,
            self.names(i, self.count[i]),
            np.stack(self.frames[i]),
            np.asarray(self.actions[i]),
            rewards,
            [segment],
        )
        self.frames[i], self.actions[i], self.rewards[i] = [], [], []
        self.count[i] += 1
        return meta
