"""On-disk dataset format (version 1): single frames in shards, written atomically.

    DIR/manifest.json            a `Manifest`: game, EnvConfig, expert, seeds, counts, checksums
    DIR/shards/<name>/frames.npy (F, 84, 84) uint8, single preprocessed frames, or (F, d)
                                 float32 state vectors (the full observation, unmasked)
    DIR/shards/<name>/actions.npy (S,) uint8, each step's label: the action ALE executed
                                 (collected data) or the expert's at the student's state
                                 (DAgger); (S, a) float32 for a Box action space
    DIR/shards/<name>/rewards.npy (S,) float32, the unclipped reward of each step
    DIR/shards/<name>/executed.npy (S,) uint8, optional: the action ALE executed, where the
                                 label is another (DAgger); a policy with `prev_action` reads it
    DIR/shards/<name>/elapsed.npy (S,) float32, optional: the time elapsed before each step's
                                 observation, in nominal steps (an env with frame-skip
                                 jitter); a policy with `timespans` reads it (1 where absent)
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

import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from cfcclone import atomic

ARRAYS = ("frames", "actions", "rewards")
OPTIONAL = ("executed", "elapsed")
"""Arrays a shard may hold (by its meta's checksums); where `executed` is absent the labels
are the executed actions, and where `elapsed` is absent every step took one nominal step."""


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
    game: str | None = None,
    executed: np.ndarray | None = None,
    elapsed: np.ndarray | None = None,
) -> dict:
    """Write one shard atomically under root/shards/name; returns its meta. `game`, where
    given, is recorded in the meta, so a shard knows where it came from; `executed` (S,), the
    actions ALE executed where they differ from the labels `actions` (DAgger); `elapsed`
    (S,), each step's elapsed time where the env's steps vary."""
    _check_arrays(name, frames, actions, rewards, segments, executed, elapsed)
    shards = Path(root) / "shards"
    arrays = {
        "frames": frames if frames.dtype == np.uint8 else frames.astype(np.float32, copy=False),
        "actions": _stored_actions(actions),
        "rewards": rewards.astype(np.float32, copy=False),
    }
    if executed is not None:
        arrays["executed"] = _stored_actions(executed)
    if elapsed is not None:
        arrays["elapsed"] = np.asarray(elapsed, np.float32)
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
            "sha256": {key: sha256(tmp / f"{key}.npy") for key in arrays},
            **({} if game is None else {"game": game}),
        }
        (tmp / "meta.json").write_text(json.dumps(meta))
    return meta


def _stored_actions(actions: np.ndarray) -> np.ndarray:
    """uint8 indices, or float32 Box actions."""
    return actions.astype(np.uint8 if actions.ndim == 1 else np.float32, copy=False)


def check_finite(where, **arrays) -> None:
    """Raise a DatasetError naming the first float array that holds NaN or inf."""
    for key, a in arrays.items():
        if a is not None and a.dtype.kind == "f" and not np.isfinite(a).all():
            rows = ~np.isfinite(np.asarray(a).reshape(len(a), -1))
            bad = int(np.flatnonzero(rows.any(1))[0])
            raise DatasetError(f"{where}: {key} holds NaN or inf (first at row {bad})")


def _check_arrays(name, frames, actions, rewards, segments, executed=None, elapsed=None):
    image = frames.ndim == 3 and frames.dtype == np.uint8
    if not (image or (frames.ndim == 2 and frames.dtype.kind == "f")):
        raise DatasetError(
            f"shard {name}: expected frames (F, H, W) uint8 or states (F, d) float, got "
            f"{frames.shape} {frames.dtype}"
        )
    if len(actions) != len(rewards) or rewards.ndim != 1 or actions.ndim not in (1, 2):
        raise DatasetError(
            f"shard {name}: actions {actions.shape} and rewards {rewards.shape} differ"
        )
    check_finite(f"shard {name}", frames=frames, actions=actions, rewards=rewards)
    if executed is not None and executed.shape != actions.shape:
        raise DatasetError(
            f"shard {name}: executed actions {executed.shape} and actions {actions.shape} differ"
        )
    if elapsed is not None and (elapsed.shape != rewards.shape or not (elapsed > 0).all()):
        raise DatasetError(
            f"shard {name}: expected elapsed times ({len(rewards)},) > 0, got {elapsed.shape}"
        )
    for key, a in (("actions", actions), ("executed actions", executed)):
        if a is not None and a.ndim == 1 and a.size and (a.min() < 0 or a.max() > 255):
            raise DatasetError(f"shard {name}: {key} must fit uint8, got {a.min()}..{a.max()}")
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
        for key in ("name", "frames", "steps", "sha256"):
            meta[key]  # noqa: B018 - a KeyError names what is missing
    except FileNotFoundError:
        raise DatasetError(f"{path}: missing; the shard is incomplete") from None
    except Exception as e:  # JSONDecodeError, a list instead of a dict, missing keys, ...
        raise DatasetError(f"{path}: corrupt shard metadata ({type(e).__name__}: {e})") from None
    return meta


def open_shard(
    shard_dir: Path, n_actions: int | None = None, verify: bool = False
) -> tuple[dict, dict[str, np.ndarray]]:
    """Memory-map one shard's arrays and check them: their shapes always, the sha256 of the
    small arrays (actions, rewards, executed) always, that every action is below `n_actions`,
    and the sha256 of the frames with `verify`. Raises DatasetError naming the file. The
    optional arrays (`OPTIONAL`) are in `arrays` where the shard has them."""
    shard_dir = Path(shard_dir)
    meta = read_shard_meta(shard_dir)
    arrays = {}
    for key in ARRAYS + tuple(k for k in OPTIONAL if k in meta["sha256"]):
        path = shard_dir / f"{key}.npy"
        if (verify or key != "frames") and sha256(path) != meta["sha256"].get(key):
            raise DatasetError(f"{path}: checksum mismatch; the file is corrupt")
        try:
            arrays[key] = np.load(path, mmap_mode="r", allow_pickle=False)
        except Exception as e:  # OSError, ValueError, a corrupt header's TokenError, ...
            raise DatasetError(f"{path}: unreadable array ({type(e).__name__}: {e})") from None
    for key, arr in arrays.items():
        n = meta["frames"] if key == "frames" else meta["steps"]
        if len(arr) != n:
            raise DatasetError(f"{shard_dir / key}.npy: expected {n} rows, got {len(arr)}")
    check_finite(shard_dir, **arrays)  # float states and Box actions: a NaN would train on
    for key in ("actions", "executed"):
        a = arrays.get(key)
        if a is not None and a.ndim == 2 and n_actions is not None:
            raise DatasetError(
                f"{shard_dir / key}.npy: Box actions (S, {a.shape[1]}) in a dataset of "
                f"{n_actions} discrete actions"
            )
        if n_actions is not None and a is not None and len(a) and int(a.max()) >= n_actions:
            raise DatasetError(
                f"{shard_dir / key}.npy: action {int(a.max())} is outside the game's "
                f"{n_actions} actions; the shard is corrupt or from another game"
            )
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


class EpisodeWriter:
    """Per-env episode buffers; `end(i)` writes env i's episode so far as one shard.

    `add` takes each step's observations (B, stack, H, W) (their newest frames are stored),
    the actions to record (B,) and the rewards (B,) of the envs `env_ids` (default: all N in
    order), and, where the recorded actions are labels other than what ALE executed (DAgger),
    the `executed` actions (B,), and where the env's steps vary, the `elapsed` time before
    each observation (B,); `names(env, count)` names env's count-th shard. Collection and
    DAgger write through it.
    """

    def __init__(self, root, num_envs: int, names, split: str | None = None, game=None):
        self.root, self.names, self.split, self.game = Path(root), names, split, game
        self.frames: list[list] = [[] for _ in range(num_envs)]
        self.actions: list[list] = [[] for _ in range(num_envs)]
        self.rewards: list[list] = [[] for _ in range(num_envs)]
        self.executed: list[list] = [[] for _ in range(num_envs)]
        self.elapsed: list[list] = [[] for _ in range(num_envs)]
        self.count = [0] * num_envs

    def add(
        self,
        obs: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        env_ids=None,
        executed: np.ndarray | None = None,
        elapsed: np.ndarray | None = None,
    ) -> None:
        ids = range(len(obs)) if env_ids is None else env_ids
        for i in ids:  # checked before any is buffered: a refused step leaves nothing behind
            for name, kept, given in (("executed actions", self.executed[i], executed),
                                      ("elapsed times", self.elapsed[i], elapsed)):  # fmt: skip
                if self.actions[i] and bool(kept) != (given is not None):
                    raise ValueError(f"env {i}: {name} given for some steps, not all")
        for k, i in enumerate(ids):
            self.frames[i].append(obs[k, -1].copy())  # not a view: it would keep all of obs
            self.actions[i].append(np.array(actions[k]))
            self.rewards[i].append(float(rewards[k]))
            if executed is not None:
                self.executed[i].append(np.array(executed[k]))
            if elapsed is not None:
                self.elapsed[i].append(float(elapsed[k]))

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
            np.stack(self.actions[i]),
            rewards,
            [segment],
            self.game,
            np.stack(self.executed[i]) if self.executed[i] else None,
            np.asarray(self.elapsed[i], np.float32) if self.elapsed[i] else None,
        )
        self.frames[i], self.actions[i], self.rewards[i], self.executed[i] = [], [], [], []
        self.elapsed[i] = []
        self.count[i] += 1
        return meta
