"""The dataset's manifest: a typed, versioned record of what a dataset holds and how it was
made, written in one place and loaded strictly (an unknown or missing field is an error).

    DIR/manifest.json   game, EnvConfig, action meanings, expert, seeds, status, and the
                        shards it holds with their checksums (only listed shards are read)

`verify` checks every listed shard against its checksums; `repair` rebuilds the manifest of a
dataset from its intact shards (`cfcclone stats --repair`) and says what it dropped.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from cfcclone import atomic
from cfcclone.config import Config, check
from cfcclone.data.format import DatasetError, list_shards, read_shard_meta
from cfcclone.envs import EnvConfig
from cfcclone.spaces import ActionSpec, ObsSpec

FORMAT_VERSION = 1
MANIFEST = "manifest.json"

Source = Literal["collect", "dagger", "ncps", "minari", "human", "synthetic"]
Status = Literal["collecting", "complete"]


@dataclass(frozen=True)
class Manifest(Config):
    """DIR/manifest.json: what a dataset holds and how it was made (format version 1)."""

    game: str
    """The ALE game or gymnasium env id, as in EnvConfig."""
    env: EnvConfig
    """The preprocessing every frame went through: what a clone must be evaluated on."""
    action_meanings: list[str]
    """The game's minimal action set; actions are indices into it (empty for Box actions)."""
    expert: str
    """Who chose the actions: planner, tracker, a checkpoint, module:function, ..."""
    source: Source = "collect"
    """How the data was made: collect, dagger (aggregated), ncps (tutorial import), minari
    (Minari import), human (cfcclone record), synthetic."""
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
    minari: dict | None = None
    """Minari import: the dataset id, its env id, Minari version and observation kind."""
    shards: dict = field(default_factory=dict)
    """Shard name -> sha256 of its frames, actions and rewards (and executed, where kept)."""
    frames_stored: int = 0
    steps: int = 0
    segments: int = 0
    episodes_complete: int = 0
    format_version: int = FORMAT_VERSION
    obs: ObsSpec = field(default_factory=ObsSpec)
    """What one stored observation is: a frame, or the env's full state vector."""
    action: ActionSpec = field(default_factory=ActionSpec)
    """What one stored action is: an index into action_meanings, or a Box vector."""

    def __post_init__(self):
        self.check_choices()
        check(
            self.format_version == FORMAT_VERSION,
            f"expected format_version {FORMAT_VERSION}, got {self.format_version}",
        )
        check(self.env.game == self.game, f"game {self.game!r} but env.game {self.env.game!r}")
        check(
            self.action.is_box or len(self.action_meanings) >= 1,
            "expected at least one action meaning",
        )

    @property
    def n_actions(self) -> int | None:
        """The discrete action count (None for Box actions): what every stored index is below."""
        return None if self.action.is_box else len(self.action_meanings)

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

    def summarized(self, root: str | Path, names=None, **changes) -> Manifest:
        """A copy with the counts and checksums of root's finished shards (or of the shards
        `names`), and `changes`."""
        return dataclasses.replace(self, **summarize(root, names), **changes)

    def shard_dirs(self, root: str | Path) -> list[Path]:
        """The shards to read: those the manifest lists (all finished ones while a collection
        is still running). A listed shard that is missing is an error; a folder the manifest
        does not list is left out, with a warning."""
        root = Path(root)
        found = list_shards(root)
        if self.status == "collecting":
            return found
        unlisted = sorted(p.name for p in found if p.name not in self.shards)
        if unlisted:
            warnings.warn(
                f"{root}: {len(unlisted)} shard folders the manifest does not list are left out "
                f"({', '.join(unlisted[:3])}{', ...' * (len(unlisted) > 3)}); "
                "cfcclone stats --repair lists the intact ones",
                stacklevel=3,
            )
        missing = [name for name in self.shards if not (root / "shards" / name).is_dir()]
        if missing:
            raise DatasetError(
                f"{root}: shards {missing[:3]} are listed in the manifest but missing; "
                "cfcclone stats --repair rebuilds the manifest from the intact shards"
            )
        return [root / "shards" / name for name in sorted(self.shards)]


def summarize(root: Path, names=None) -> dict:
    """Counts and checksums over the finished shards (or the shards `names`), for the
    manifest."""
    dirs = list_shards(root) if names is None else [Path(root) / "shards" / n for n in names]
    metas = [read_shard_meta(p) for p in dirs]
    segments = [s for m in metas for s in m["segments"]]
    return {
        "shards": {m["name"]: m["sha256"] for m in metas},
        "frames_stored": sum(m["frames"] for m in metas),
        "steps": sum(m["steps"] for m in metas),
        "segments": len(segments),
        "episodes_complete": sum(s.complete and s.episode_start for s in segments),
    }


def check_shards(root: str | Path, manifest: Manifest, dirs=None) -> tuple[list[str], dict]:
    """Verify shards fully (every checksum, actions in the game's set, the game recorded):
    the listed ones, or `dirs`. Returns (intact names, {bad name: why})."""
    from cfcclone.data.format import open_shard

    good, bad = [], {}
    for shard in manifest.shard_dirs(root) if dirs is None else dirs:
        try:
            meta, _ = open_shard(shard, manifest.n_actions, verify=True)
            if meta.get("game", manifest.game) != manifest.game:
                raise DatasetError(f"{shard}: a {meta['game']} shard in a {manifest.game} dataset")
            good.append(shard.name)
        except DatasetError as e:
            bad[shard.name] = str(e)
    return good, bad


def repair(root: str | Path, game: str | None = None) -> tuple[Manifest, dict]:
    """Rebuild root's manifest from its intact shards; returns it and {dropped shard: why}.
    A lost manifest needs `game` (the preprocessing is then EnvConfig's default, the expert
    "unknown"); a stale one keeps its header."""
    from cfcclone.envs import env_specs

    root = Path(root)
    try:
        old = Manifest.read(root)
    except DatasetError:
        if game is None:
            raise DatasetError(
                f"{root}: the manifest is lost or unreadable; pass --game to rebuild it"
            ) from None
        env = EnvConfig(game=game)
        obs, action, meanings = env_specs(env)
        old = Manifest(game, env, meanings, "unknown", obs=obs, action=action)
    if game is not None and game != old.game:
        raise DatasetError(f"{root}: the manifest says {old.game!r}, not {game!r}")
    header = dataclasses.replace(old, status="complete")
    good, bad = check_shards(root, header, list_shards(root))
    if bad and not good:  # nothing matches: write nothing, so the right repair still works
        first = next(iter(bad.values()))
        raise DatasetError(
            f"{root}: none of its {len(bad)} shards is an intact {header.game} shard, so "
            f"nothing was written (the first: {first})"
        )
    manifest = header.summarized(root, good)
    manifest.write(root)
    return manifest, bad
