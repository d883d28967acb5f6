"""SequenceDataset: windows of T steps over memory-mapped single frames, stacked on the fly.

Windows never cross an episode boundary. Each window lies inside one segment, so the recurrent
state that training starts from zero at a window's first step is never carried across two
episodes. `episode_start[0]` is True where a window begins an episode. Segments shorter than
the window give none. The train/val split is by episode: an episode (or an imported window,
whose split the tutorial's file name fixes) is wholly in one split.

Frames are memory-mapped. A batch gathers T + stack - 1 consecutive frames per window,
(B, T+3, 84, 84) with the default stack of 4, a quarter of the bytes of the stacks it stands
for. `expand_stacks` turns it into (B, T, 4, 84, 84) as a view, on whatever device the frames
are. The mapped pages are dropped from the process every few hundred MB read, so its RSS does
not grow with the dataset; the page cache still keeps hot data.
"""

from __future__ import annotations

import mmap
from pathlib import Path

import numpy as np
import torch

from cfcclone.data.batch import Batch, expand_stacks
from cfcclone.data.format import DatasetError, open_shard
from cfcclone.data.manifest import Manifest
from cfcclone.data.streams import EpisodeStreams

SPLITS = ("train", "val", "all")
_RELEASE_BYTES = 256 << 20


class SequenceDataset(torch.utils.data.Dataset):
    """Item i: obs (T, 4, 84, 84) uint8, actions (T,) int64, episode_start (T,) bool.

    Items are the non-overlapping windows of each episode, plus one window flush with its end
    where the length is not a multiple of T, so every step is covered. `sample` draws random
    windows at any offset, for training.

        ds = SequenceDataset("data/breakout", seq_len=32, split="train")
        batch = ds.sample(16, np.random.default_rng(0))   # Batch: frames (16, 35, 84, 84) uint8
        obs = batch.obs                                    # (16, 32, 4, 84, 84), a view
    """

    def __init__(
        self,
        root: str | Path,
        seq_len: int = 32,
        split: str = "train",
        val_fraction: float = 0.1,
        seed: int = 0,
        verify: bool = False,
        stack: int | None = None,
    ):
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        if seq_len < 1:
            raise ValueError(f"expected seq_len >= 1, got {seq_len}")
        self.root = Path(root)
        self.seq_len = seq_len
        self.split = split
        self.manifest = Manifest.read(self.root)
        self.action_meanings = list(self.manifest.action_meanings)
        self.stack = self.env_config.stack if stack is None else stack
        """Observations per stack: the data's, or another view of the same single frames."""
        if not (isinstance(self.stack, int) and self.stack >= 1):
            raise ValueError(f"expected stack >= 1, got {self.stack!r}")
        self._frames, self._actions, self._rewards, rows = [], [], [], []
        self._executed = []  # the labels where a shard keeps no executed actions
        self._elapsed = []  # None where a shard keeps no elapsed times (all nominal)
        n_actions = self.manifest.n_actions
        for i, shard_dir in enumerate(self.manifest.shard_dirs(self.root)):
            meta, arrays = open_shard(shard_dir, n_actions, verify)
            self._frames.append(arrays["frames"])
            self._actions.append(arrays["actions"])
            self._rewards.append(arrays["rewards"])
            self._executed.append(arrays.get("executed", arrays["actions"]))
            self._elapsed.append(arrays.get("elapsed"))
            rows += [(i, s) for s in meta["segments"]]
        if not rows:
            raise DatasetError(f"{self.root}: no finished shards")
        chosen = _choose_split([s for _, s in rows], split, val_fraction, seed)
        self.segments = [rows[k] for k in chosen]
        self.episodes = len(self.segments)
        self.steps = sum(s.length for _, s in self.segments)
        self._windows = np.array(
            [
                (k, start)
                for k, (_, s) in enumerate(self.segments)
                for start in _starts(s.length, seq_len)
            ],
            dtype=np.int64,
        ).reshape(-1, 2)
        # For `sample`: segments long enough for a window, weighted by their window count.
        usable = [k for k, (_, s) in enumerate(self.segments) if s.length >= seq_len]
        self._usable = np.array(usable, dtype=np.int64)
        counts = np.array([self.segments[k][1].length - seq_len + 1 for k in usable], np.float64)
        self._weights = counts / counts.sum() if len(usable) else counts
        self._bytes_read = 0

    @property
    def env_config(self):
        """The EnvConfig the data was recorded with (from the manifest)."""
        return self.manifest.env

    @property
    def obs_shape(self) -> tuple[int, ...]:
        """One stored observation's shape: (H, W) or (d,)."""
        return self.manifest.obs.shape(self.env_config.screen_size)

    @property
    def box(self) -> bool:
        """Whether the actions are Box vectors (else discrete indices)."""
        return self.manifest.action.is_box

    def _empty(self, b: int) -> tuple[np.ndarray, ...]:
        """Uninitialised frames, actions, prev actions and zeroed starts of b windows."""
        t, spec = self.seq_len, self.manifest
        frames = np.empty((b, t + self.stack - 1, *self.obs_shape), spec.obs.dtype)
        shape = (b, t, spec.action.dim) if self.box else (b, t)
        actions = np.empty(shape, np.float32 if self.box else np.int64)
        return frames, actions, np.full((b, t), -1, np.int64), np.zeros((b, t), bool)

    def __len__(self) -> int:
        return len(self._windows)

    def _frame_rows(self, k: int, start: int, steps: int):
        """Shard index and frame rows (steps + stack - 1) of `steps` steps from step `start` of
        segment k: the frames of their stacks, padded at the episode's start."""
        shard, seg = self.segments[k]
        n = steps + self.stack - 1
        first = seg.frame_offset + seg.prefix + start - (self.stack - 1)
        if first >= seg.frame_offset:
            return shard, slice(first, first + n)
        return shard, np.maximum(np.arange(first, first + n), seg.frame_offset)

    def frames(self, k: int, start: int, steps: int) -> np.ndarray:
        """(steps + stack - 1, H, W) uint8, a copy: the frames of the stacks of `steps` steps
        from step `start` of segment k, padded by the first frame at the episode's start."""
        shard, rows = self._frame_rows(k, start, steps)
        frames = np.array(self._frames[shard][rows])  # a copy, never a view of the map
        self._account(frames.nbytes)
        return frames

    def actions(self, k: int, start: int, steps: int) -> np.ndarray:
        """(steps,) int64 (or (steps, a) float32 Box actions): the actions of `steps` steps
        from step `start` of segment k."""
        shard, seg = self.segments[k]
        first = seg.step_offset + start
        a = self._actions[shard][first : first + steps]
        return a.astype(np.float32) if self.box else a.astype(np.int64)

    def prev_actions(self, k: int, start: int, steps: int) -> np.ndarray:
        """(steps,) int64: the action executed at the step before each of `steps` steps from
        step `start` of segment k; -1 before the segment's first step (an episode's start, or
        unknown before an imported window)."""
        shard, seg = self.segments[k]
        first = seg.step_offset + start
        prev = np.full(steps, -1, np.int64)
        if self.box:  # a previous-action input is for discrete actions only
            return prev
        lo = 1 if start == 0 else 0
        prev[lo:] = self._executed[shard][first - 1 + lo : first + steps - 1]
        return prev

    def elapsed(self, k: int, start: int, steps: int) -> np.ndarray:
        """(steps,) float32: the time elapsed before the observation of each of `steps` steps
        from step `start` of segment k (1 where the shard keeps none)."""
        shard, seg = self.segments[k]
        stored = self._elapsed[shard]
        if stored is None:
            return np.ones(steps, np.float32)
        first = seg.step_offset + start
        return np.asarray(stored[first : first + steps], np.float32)

    def window(self, k: int, start: int) -> tuple[np.ndarray, ...]:
        """Frames (T+stack-1, H, W), actions (T,), episode_start (T,) and prev_actions (T,) of
        one window."""
        seg = self.segments[k][1]
        if not 0 <= start <= seg.length - self.seq_len:
            raise IndexError(f"window at {start} does not fit a segment of {seg.length} steps")
        episode_start = np.zeros(self.seq_len, dtype=bool)
        episode_start[0] = start == 0 and seg.episode_start
        t = self.seq_len
        return (
            self.frames(k, start, t),
            self.actions(k, start, t),
            episode_start,
            self.prev_actions(k, start, t),
        )

    def __getitem__(self, i: int):
        k, start = self._windows[i]
        frames, actions, episode_start, _ = self.window(int(k), int(start))
        obs = expand_stacks(torch.from_numpy(frames)[None], stack=self.stack)[0].contiguous()
        return obs, torch.from_numpy(actions), torch.from_numpy(episode_start)

    def sample(self, batch_size: int, rng: np.random.Generator) -> Batch:
        """A batch of windows drawn uniformly over every valid (episode, offset)."""
        if not len(self._usable):
            raise DatasetError(f"{self.root}: no {self.split} episode has {self.seq_len} steps")
        ks = rng.choice(self._usable, size=batch_size, p=self._weights)
        return self.collate(
            [(k, rng.integers(0, self.segments[k][1].length - self.seq_len + 1)) for k in ks]
        )

    def streams(self, batch_size: int, rng: np.random.Generator) -> EpisodeStreams:
        """`batch_size` rows that each play whole episodes back to back, T steps a batch (for
        stored-state training)."""
        return EpisodeStreams(self, batch_size, rng)

    def batches(self, batch_size: int):
        """The fixed windows in order, as Batches (for validation)."""
        for i in range(0, len(self), batch_size):
            yield self.collate(self._windows[i : i + batch_size])

    def collate(self, windows) -> Batch:
        frames, actions, prev, starts = self._empty(len(windows))
        elapsed = np.ones(starts.shape, np.float32)
        for j, (k, start) in enumerate(windows):
            frames[j], actions[j], starts[j], prev[j] = self.window(int(k), int(start))
            elapsed[j] = self.elapsed(int(k), int(start), self.seq_len)
        return Batch(*map(torch.from_numpy, (frames, actions, starts, prev, elapsed)))

    def all_steps(self, key: str = "frames") -> np.ndarray:
        """Every step's stored observation ("frames") or action ("actions") of this split, in
        one array (for normalisation statistics of state vectors; frames would be large)."""
        parts = []
        for shard, seg in self.segments:
            if key == "frames":
                lo = seg.frame_offset + seg.prefix
                parts.append(np.asarray(self._frames[shard][lo : lo + seg.length]))
            else:
                lo = seg.step_offset
                parts.append(np.asarray(self._actions[shard][lo : lo + seg.length]))
        return np.concatenate(parts)

    def action_counts(self) -> np.ndarray | None:
        """Steps per discrete action (None for Box actions)."""
        if self.box:
            return None
        counts = np.zeros(len(self.action_meanings), dtype=np.int64)
        for shard, seg in self.segments:
            a = self._actions[shard][seg.step_offset : seg.step_offset + seg.length]
            counts += np.bincount(a, minlength=len(counts))[: len(counts)]
        return counts

    def returns(self) -> np.ndarray:
        """Returns of the complete episodes in this split."""
        return np.array([s.ret for _, s in self.segments if s.complete and s.episode_start])

    def _account(self, nbytes: int) -> None:
        self._bytes_read += nbytes
        if self._bytes_read >= _RELEASE_BYTES:
            self.release()

    def release(self) -> None:
        """Drop the mapped frame pages from this process (they stay in the page cache)."""
        self._bytes_read = 0
        for frames in self._frames:
            m = getattr(frames, "_mmap", None)
            if m is not None and hasattr(m, "madvise"):
                m.madvise(mmap.MADV_DONTNEED)


def _starts(length: int, seq_len: int) -> list[int]:
    if length < seq_len:
        return []
    starts = list(range(0, length - seq_len + 1, seq_len))
    if starts[-1] != length - seq_len:
        starts.append(length - seq_len)
    return starts


def _choose_split(segments, split: str, val_fraction: float, seed: int) -> list[int]:
    """Indices of the segments in `split`. Fixed splits (tutorial files) are kept; the rest
    are split by episode with a seeded permutation, at least one episode in val where there
    are two or more."""
    if split == "all":
        return list(range(len(segments)))
    free = [i for i, s in enumerate(segments) if s.split is None]
    n_val = min(len(free) - 1, max(1, round(val_fraction * len(free)))) if len(free) > 1 else 0
    val = set(np.random.default_rng(seed).permutation(free)[:n_val].tolist())
    val |= {i for i, s in enumerate(segments) if s.split == "val"}
    if split == "val":
        return sorted(val)
    return [i for i in range(len(segments)) if i not in val]


def describe(root: str | Path) -> dict:
    """Episodes, steps, bytes per step, the action histogram and the expert's returns."""
    ds = SequenceDataset(root, seq_len=1, split="all")
    counts = ds.action_counts()
    returns = ds.returns()
    on_disk = sum(f.stat().st_size for f in Path(root).rglob("*") if f.is_file())
    if counts is None:  # Box actions: per-dimension statistics
        a = ds.all_steps("actions")
        actions = {f"a[{i}]": {"mean": float(a[:, i].mean()), "std": float(a[:, i].std()),
                               "min": float(a[:, i].min()), "max": float(a[:, i].max())}
                   for i in range(a.shape[1])}  # fmt: skip
    else:
        actions = dict(zip(ds.action_meanings, counts.tolist(), strict=False))
    return {
        "game": ds.env_config.game,
        "env": ds.env_config.describe(),
        "expert": ds.manifest.expert,
        "episodes": int(sum(s.episode_start for _, s in ds.segments)),
        "complete_episodes": len(returns),
        "segments": len(ds.segments),
        "steps": ds.steps,
        "bytes_per_step": on_disk / max(ds.steps, 1),
        "actions": actions,
        "action_space": ds.manifest.action.describe(ds.action_meanings),
        "return_mean": float(returns.mean()) if len(returns) else None,
        "return_std": float(returns.std()) if len(returns) else None,
    }
