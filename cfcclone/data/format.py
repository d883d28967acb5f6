"""On-disk dataset format (version 1): single frames in shards, written atomically.

    DIR/manifest.json            game, EnvConfig, expert, seeds, counts, checksums, version
    DIR/shards/<name>/frames.npy (F, 84, 84) uint8, single preprocessed frames
    DIR/shards/<name>/actions.npy (S,) uint8, the action ALE executed at each step
    DIR/shards/<name>/rewards.npy (S,) float32, the unclipped reward of each step
    DIR/shards/<name>/meta.json  its segments, with the sha256 of each array file

A shard holds one or more segments. A segment is a run of consecutive steps of one episode:
a whole episode in collected data, or one 32-step window in data imported from the tutorial's
format. Segment k owns `prefix + length` frames from `frame_offset` and `length` steps from
`step_offset`. Its step t sees the stack of frames `stack_indices(prefix + t, 0)`: with
prefix 0 the first frame pads the stack, exactly as the env pads it at reset; an imported
window carries the 3 frames before its first step as its prefix.

A shard is written into a temporary directory that is renamed into place, so a crash leaves
either a whole shard or none; `*.tmp` directories are ignored and swept by the next writer.
Frames take 7,056 bytes a step plus 5 for action and reward, against 28,224 for the tutorial's
format, which stores every frame once in each of the 4 stacks it belongs to.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

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


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file and a rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
    shards.mkdir(parents=True, exist_ok=True)
    final = shards / name
    if final.exists():
        raise FileExistsError(f"shard {final} already exists")
    tmp = Path(tempfile.mkdtemp(dir=shards, prefix=f"{name}.", suffix=".tmp"))
    try:
        arrays = {
            "frames": frames.astype(np.uint8, copy=False),
            "actions": actions.astype(np.uint8, copy=False),
            "rewards": rewards.astype(np.float32, copy=False),
        }
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
        os.chmod(tmp, 0o755)  # mkdtemp makes 0700
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
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
    """Remove the half-written shards a crash left behind."""
    for tmp in (Path(root) / "shards").glob("*.tmp"):
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
    return sorted(p for p in shards.iterdir() if p.is_dir() and not p.name.endswith(".tmp"))


def read_manifest(root: Path) -> dict:
    path = Path(root) / MANIFEST
    if not path.exists():
        raise DatasetError(f"{path}: no manifest; is {root} a cfcclone dataset?")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise DatasetError(f"{path}: corrupt manifest ({e})") from None
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise DatasetError(f"{path}: expected format_version {FORMAT_VERSION}, got {version}")
    return manifest


def write_manifest(root: Path, manifest: dict) -> None:
    manifest = {**manifest, "format_version": FORMAT_VERSION}
    atomic_write_text(Path(root) / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True))


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
