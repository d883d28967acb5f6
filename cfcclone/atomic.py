"""Atomic writes: every file and folder the project writes appears whole or not at all.

`atomic_path(path)` yields a temporary sibling of `path` to write into; when the block ends
without error it is renamed over `path` (one `rename`, atomic on POSIX), and when it raises
the temporary is removed. Checkpoints, shards, manifests, metrics, videos and imported
datasets all go through it, so a crash or Ctrl-C never leaves a half-written file behind.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def check_file_target(path: str | Path) -> Path:
    """`path` as a file to write: a ValueError naming it where it is a folder, or where one of
    its parents is a file. Commands call it before any work, so nothing runs for nothing."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder; expected a file path to write")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"cannot write {path}: {parent} is a file, not a folder")
            break
    return path


@contextmanager
def atomic_path(
    path: str | Path, directory: bool = False, overwrite: bool = True
) -> Iterator[Path]:
    """Yield a temporary file (or, with `directory`, an empty folder) beside `path`, renamed to
    `path` when the block succeeds. With overwrite=False an existing `path` is refused before
    and after the block (FileExistsError), and a folder is never replaced."""
    path = Path(path)
    if not overwrite and path.exists():
        raise FileExistsError(f"{path} already exists; refusing to overwrite it")
    if not directory:
        check_file_target(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix, suffix = f".{path.name}.", f".tmp{path.suffix}"
    if directory:
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=prefix, suffix=suffix))
    else:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=suffix)
        os.close(fd)
        tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o755 if directory else 0o644)  # mkstemp/mkdtemp make 0600/0700
        if not overwrite and path.exists():
            raise FileExistsError(f"{path} appeared while it was being written; left untouched")
        os.replace(tmp, path)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write `text` to `path` atomically, synced to disk before the rename."""
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def append_line(path: str | Path, line: str) -> None:
    """Append one line to a log (metrics.jsonl): the old lines and the new one are written to a
    temporary copy that replaces the file, so a crash never leaves half a line."""
    path = Path(path)
    old = path.read_text() if path.exists() else ""
    atomic_write_text(path, old + line.rstrip("\n") + "\n")


def sweep_temporaries(folder: str | Path) -> None:
    """Remove what an interrupted `atomic_path` left in `folder` (a killed process cannot)."""
    for tmp in Path(folder).glob(".*.tmp*"):
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
