"""EpisodeStreams: rows that play a dataset's episodes back to back, T steps a batch, for
stored-state training (truncated BPTT over whole episodes)."""

from __future__ import annotations

import numpy as np
import torch

from cfcclone.data.batch import Batch
from cfcclone.data.format import DatasetError


class EpisodeStreams:
    """Consecutive windows for truncated BPTT with a stored state.

    Each of B rows plays episodes of the split one after another, drawn at random with odds
    proportional to their length (so every step is equally likely, as in `sample`), and
    `next()` returns the next T steps of every row. A row whose episode ends inside a window
    goes on into its next episode there, and `episode_start` marks that step: the model zeroes
    the state and `Batch.obs` pads the stacks there. Row b of a batch continues row b of the
    batch before it, so the final state of one batch is the initial state of the next.
    """

    def __init__(self, dataset, batch_size: int, rng: np.random.Generator):  # a SequenceDataset
        windows = [seg for _, seg in dataset.segments if not seg.episode_start]
        if windows:
            raise DatasetError(
                f"{dataset.root}: {len(windows)} segments do not start an episode (imported "
                "windows?); stored-state training needs whole episodes"
            )
        self.dataset, self.rng = dataset, rng
        lengths = np.array([seg.length for _, seg in dataset.segments], np.float64)
        self._odds = lengths / lengths.sum()
        self.segment = [self._draw() for _ in range(batch_size)]
        self.position = [0] * batch_size

    def _draw(self) -> int:
        return int(self.rng.choice(len(self._odds), p=self._odds))

    def _row(self, b: int, frames, actions, starts, prev, elapsed) -> None:
        """Fill one row with its next T steps, crossing into new episodes as they come."""
        ds, t = self.dataset, 0
        while t < ds.seq_len:
            k, pos = self.segment[b], self.position[b]
            seg = ds.segments[k][1]
            n = min(ds.seq_len - t, seg.length - pos)
            chunk = ds.frames(k, pos, n)
            if t == 0:
                frames[: n + ds.stack - 1] = chunk
            else:  # the stacks of a new episode are padded by the gather in expand_stacks
                frames[t + ds.stack - 1 : t + ds.stack - 1 + n] = chunk[ds.stack - 1 :]
            actions[t : t + n] = ds.actions(k, pos, n)
            prev[t : t + n] = ds.prev_actions(k, pos, n)
            elapsed[t : t + n] = ds.elapsed(k, pos, n)
            starts[t] = pos == 0
            t, self.position[b] = t + n, pos + n
            if self.position[b] == seg.length:
                self.segment[b], self.position[b] = self._draw(), 0

    def next(self) -> Batch:
        frames, actions, prev, starts = self.dataset._empty(len(self.segment))
        elapsed = np.ones(starts.shape, np.float32)
        for row in range(len(self.segment)):
            self._row(row, frames[row], actions[row], starts[row], prev[row], elapsed[row])
        return Batch(*map(torch.from_numpy, (frames, actions, starts, prev, elapsed)))
