"""The one atomic writer: a file or folder appears whole, or not at all."""

import pytest

from cfcclone.atomic import append_line, atomic_path, atomic_write_text, sweep_temporaries


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "a.txt"
    atomic_write_text(path, "old")
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash")
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["a.txt"]
    assert oct(path.stat().st_mode & 0o777) == "0o644"


def test_folders_and_refusals(tmp_path):
    out = tmp_path / "ds"
    with atomic_path(out, directory=True, overwrite=False) as tmp:
        (tmp / "x").write_text("1")
        assert not out.exists()  # nothing is visible before the block ends
    assert (out / "x").read_text() == "1"
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        with atomic_path(out, directory=True, overwrite=False):
            pass
    with pytest.raises(FileExistsError, match="appeared while it was being written"):
        with atomic_path(tmp_path / "late", overwrite=False) as tmp:
            (tmp_path / "late").write_text("someone else")
    assert (tmp_path / "late").read_text() == "someone else"


def test_append_line_and_sweep(tmp_path):
    log = tmp_path / "metrics.jsonl"
    append_line(log, '{"epoch": 1}')
    append_line(log, '{"epoch": 2}\n')
    assert log.read_text() == '{"epoch": 1}\n{"epoch": 2}\n'
    (tmp_path / ".metrics.jsonl.abc.tmp.jsonl").write_text("left by a kill")
    (tmp_path / ".shard.xyz.tmp").mkdir()
    sweep_temporaries(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.jsonl"]
