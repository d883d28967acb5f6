"""Import/export between the NCP tutorial's npz files and our dataset format."""

from pathlib import Path

import numpy as np
import pytest
import torch

from cfcclone.data.dataset import SequenceDataset
from cfcclone.data.format import DatasetError, Segment, write_shard
from cfcclone.data.manifest import Manifest
from cfcclone.data.ncps_format import export_ncps, import_ncps
from cfcclone.envs import EnvConfig

MEANINGS = ["NOOP", "FIRE", "RIGHT", "LEFT"]


def write_episodes(root: Path, shards: dict[str, list[tuple[int, str]]], seed: int = 0) -> None:
    """A dataset of random episodes: shard name -> [(length, split)], prefix 0."""
    rng = np.random.default_rng(seed)
    for name, episodes in shards.items():
        segments, offset = [], 0
        for length, split in episodes:
            segments.append(Segment(offset, offset, length, split=split, ret=1.0))
            offset += length
        frames = rng.integers(0, 256, size=(offset, 84, 84), dtype=np.uint8)
        actions = rng.integers(0, 4, size=offset).astype(np.uint8)
        write_shard(root, name, frames, actions, np.ones(offset, np.float32), segments)
    Manifest("breakout", EnvConfig(), MEANINGS, "random", source="synthetic").summarized(
        root
    ).write(root)


def load_dir(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    out = {}
    for f in sorted(path.iterdir()):
        with np.load(f) as z:
            out[f.name] = (z["obs"], z["actions"])
    return out


def all_stacks(root: Path, split: str):
    """Every step's stack (4, 84, 84) and action, in order, read with windows of one step."""
    ds = SequenceDataset(root, seq_len=1, split=split)
    stacks = torch.cat([ds[i][0] for i in range(len(ds))]).numpy()
    actions = torch.cat([ds[i][1] for i in range(len(ds))]).numpy()
    return stacks, actions


def disk_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


@pytest.fixture
def ours(tmp_path):
    root = tmp_path / "ours"
    write_episodes(root, {"000000": [(70, "train"), (40, "val")], "000001": [(35, None)]})
    return root


def test_export_import_round_trip(ours, tmp_path, tutorial):
    exp1, imp, exp2 = tmp_path / "exp1", tmp_path / "imp", tmp_path / "exp2"
    counts = export_ncps(ours, exp1, progress=False)
    # 70 -> windows at 0, 32, 38; 35 -> 0, 3 (train); 40 -> 0, 8 (val).
    assert (counts["train"], counts["val"]) == (5, 2)
    x, y = tutorial.AtariCloningDataset(exp1, "train")[0]
    assert x.dtype == torch.float32 and x.shape == (32, 4, 84, 84) and y.shape == (32,)
    assert len(tutorial.AtariCloningDataset(exp1, "val")) == 2

    manifest = import_ncps(exp1, imp, progress=False)
    assert manifest.steps == 7 * 32 and manifest.segments == 7
    assert manifest.frames_stored == 7 * 35 and manifest.source == "ncps"
    export_ncps(imp, exp2, progress=False)
    a, b = load_dir(exp1), load_dir(exp2)
    assert list(a) == list(b)
    for name in a:
        for x1, x2 in zip(a[name], b[name], strict=True):
            assert x1.dtype == x2.dtype and np.array_equal(x1, x2), name
        assert a[name][0].shape == (32, 84, 84, 4) and a[name][1].dtype == np.int64

    for split in ("train", "val"):
        orig, back = SequenceDataset(ours, 32, split), SequenceDataset(imp, 32, split)
        assert len(orig) == len(back)
        for i in range(len(orig)):
            for t1, t2 in zip(orig[i], back[i], strict=True):
                assert torch.equal(t1, t2), (split, i)
    # The imported segments start episodes exactly where the original windows did.
    starts = [s.episode_start for _, s in SequenceDataset(imp, 32, "all").segments]
    assert starts == [True, False, False, True, False, True, False]


def test_import_random_make_data_exactly(tmp_path, tutorial):
    src, imp, exp = tmp_path / "src", tmp_path / "imp", tmp_path / "exp"
    tutorial.main(["make-data", str(src), "--files", "12"])
    manifest = import_ncps(src, imp, progress=False)
    assert manifest.steps == 12 * 32 and manifest.files == {"train": 11, "val": 1}
    files = load_dir(src)
    for split in ("train", "val"):
        stacks, actions = all_stacks(imp, split)
        mine = [v for k, v in files.items() if k.startswith(split)]
        assert np.array_equal(stacks, np.concatenate([o for o, _ in mine]).transpose(0, 3, 1, 2))
        assert np.array_equal(actions, np.concatenate([a for _, a in mine]))
    # Random stacks are not consecutive: every step is its own segment, no window of 32.
    assert len(SequenceDataset(imp, 32, "train")) == 0
    export_ncps(imp, exp, seq_len=1, progress=False)
    assert len(list(exp.iterdir())) == 12 * 32


def test_import_splits_runs_and_reset_stacks(tmp_path):
    """A file holding a reset-padded run, a break, then another run gives two segments."""
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 256, size=(20, 84, 84), dtype=np.uint8)
    idx = [[max(t - 3 + c, 0) for c in range(4)] for t in range(10)]
    idx += [[10 + t + c for c in range(4)] for t in range(6)]
    obs = frames[np.array(idx)].transpose(0, 2, 3, 1)
    src = tmp_path / "src"
    src.mkdir()
    np.savez(src / "train_00000.npz", obs=obs, actions=np.arange(16) % 4)
    import_ncps(src, tmp_path / "imp", progress=False)
    ds = SequenceDataset(tmp_path / "imp", 1, "train")
    assert [(s.length, s.episode_start) for _, s in ds.segments] == [(10, True), (6, False)]
    stacks, actions = all_stacks(tmp_path / "imp", "train")
    assert np.array_equal(stacks, obs.transpose(0, 3, 1, 2))
    assert np.array_equal(actions, np.arange(16) % 4)


def _good(path: Path):
    rng = np.random.default_rng(0)
    obs = rng.integers(0, 256, size=(32, 84, 84, 4), dtype=np.uint8)
    np.savez(path, obs=obs, actions=rng.integers(0, 4, size=32))


def _truncated(path):
    _good(path)
    path.write_bytes(path.read_bytes()[:5000])


def _bad_shape(path):
    np.savez(path, obs=np.zeros((32, 84, 84, 3), np.uint8), actions=np.zeros(32, np.int64))


def _no_actions(path):
    np.savez(path, obs=np.zeros((32, 84, 84, 4), np.uint8))


def _out_of_range(path):
    np.savez(path, obs=np.zeros((32, 84, 84, 4), np.uint8), actions=np.full(32, 4))


def _float_actions(path):
    np.savez(path, obs=np.zeros((32, 84, 84, 4), np.uint8), actions=np.zeros(32))


@pytest.mark.parametrize(
    "corrupt, what",
    [
        (_truncated, "unreadable"),
        (_bad_shape, "obs"),
        (_no_actions, "actions"),
        (_out_of_range, "[0, 4)"),
        (_float_actions, "integer"),
    ],
)
def test_import_rejects_bad_files(tmp_path, corrupt, what):
    src = tmp_path / "src"
    src.mkdir()
    _good(src / "train_00000.npz")
    corrupt(src / "train_00001.npz")
    _good(src / "val_00002.npz")
    with pytest.raises(DatasetError, match="train_00001.npz") as err:
        import_ncps(src, tmp_path / "out", progress=False)
    assert what in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]  # nothing half-written


def test_import_empty_src(tmp_path):
    with pytest.raises(DatasetError, match=str(tmp_path)):
        import_ncps(tmp_path, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_refuse_existing_out(ours, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    _good(src / "train_00000.npz")
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(FileExistsError):
        import_ncps(src, out, progress=False)
    with pytest.raises(FileExistsError):
        export_ncps(ours, out, progress=False)
    assert list(out.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ours", "out", "src"]
