"""BenchConfig: the sizes of one `cfcclone bench` run (the CLI's options come from it)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from cfcclone.config import Config, check

SEQ = 32
"""Window length of every training and sampling figure, as in the tutorial."""
REF_WARMUP = 20
"""Untimed steps of the tutorial's loop before timing, as its rollout command does."""
BUDGET_S = 300.0
"""No further round of the rollout figures starts once they took this long (seconds)."""
RSS_EPISODE = 5_000
"""Frames per synthetic episode (one shard each) in the peak-RSS dataset."""


@dataclass(frozen=True)
class BenchConfig(Config):
    """What one benchmark run measures, and how much of it."""

    device: str = "auto"
    """auto, cpu, cuda or cuda:N."""
    frames: int = 20_000
    """Frames collected for the training, storage and sampler figures."""
    batch: int = 32
    """Training batch, in windows of 32 steps."""
    train_steps: int = 3
    """Timed steps, after one warm-up step, of the tutorial and impala encoders."""
    cheap_train_steps: int = 10
    """Timed steps of the nature encoder (about 10x cheaper)."""
    encoders: list[str] = field(default_factory=lambda: ["tutorial", "nature", "impala"])
    """cfcclone's encoders to train; the tutorial's pipeline runs where 'tutorial' is here."""
    rollout_steps: int = 1_000
    """Env steps per timed rollout (a vector step counts its batch)."""
    envs: list[int] = field(default_factory=lambda: [16, 64])
    """Vector env sizes of cfcclone's rollouts and of the raw ceiling."""
    repeats: int = 5
    """Rounds of the rollout figures, each timing every rollout once; medians are reported."""
    sampler_batches: int = 20
    """Timed sampler batches; the median is reported."""
    rss_frames: int = 200_000
    """Frames of the synthetic dataset read for the peak-RSS figure."""
    threads: int = 0
    """torch threads while measuring; 0 keeps torch's default (one per core)."""

    def __post_init__(self):
        check(self.envs and min(self.envs) >= 1, f"expected envs >= 1, got {self.envs}")
        check(self.rss_frames >= SEQ, f"expected rss_frames >= {SEQ}, got {self.rss_frames}")
        for name in ("frames", "batch", "train_steps", "cheap_train_steps", "rollout_steps"):
            check(getattr(self, name) >= 1, f"expected {name} >= 1, got {getattr(self, name)}")

    @classmethod
    def quick(cls) -> BenchConfig:
        """Tiny sizes, for tests: seconds, not figures."""
        return dataclasses.replace(
            cls(),
            frames=1_000,
            batch=8,
            train_steps=1,
            cheap_train_steps=1,
            encoders=["nature"],
            rollout_steps=16,
            envs=[2, 4],
            repeats=1,
            sampler_batches=2,
            rss_frames=10_000,
        )
