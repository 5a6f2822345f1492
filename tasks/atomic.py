"""Atomic file writes: a reader sees the old file or the whole new one, never half.

A full disk (or an exhausted quota) while writing is a :class:`DiskFull`: one
line that says so and names the file, instead of a bare ``[Errno 28]`` or
numpy's "N requested and M written".
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable

from plugins.errors import TfpipeError

_NO_SPACE = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded"}


class DiskFull(TfpipeError, OSError):
    """Writing a file failed for lack of space. Also an OSError, so code that tolerates a failed
    write (the hash caches) still does."""

    def __init__(self, path: Path, code: int):
        self.message = (f"{_NO_SPACE[code]}: could not write {path}; free some space on that disk, "
                        "or point TFPIPE_WORKSPACE (or --workspace) at a larger one, and rerun")
        super().__init__(self.message)
        self.errno, self.strerror, self.filename = code, _NO_SPACE[code], str(path)

    def __str__(self) -> str:
        return self.message  # OSError's own would be "[Errno 28] ...: 'path'"


@contextmanager
def writing(path: Path) -> Iterator[None]:
    """Turn a full disk met inside the block into a DiskFull naming `path`."""
    try:
        yield
    except DiskFull:
        raise
    except OSError as exc:
        if exc.errno in _NO_SPACE:
            raise DiskFull(path, exc.errno) from exc
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _temporary(path: Path) -> tuple[int, str]:
    """A temporary file beside `path`, with the mode a plain open() would give (mkstemp's is
    0600: a shared workspace or a served report would be unreadable to the team)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, 0o666 & ~_umask())
    return fd, tmp


def _replace_with(path: Path, fill: Callable[[Any], None]) -> None:
    """`fill(handle)` writes a temporary file beside `path`, synced and renamed to `path` once whole."""
    with writing(path):
        fd, tmp = _temporary(path)
        try:
            with os.fdopen(fd, "wb") as handle:
                fill(handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
    _replace_with(path, lambda handle: handle.write(data))


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, value: Any) -> None:
    write_text(path, json.dumps(value, indent=2, sort_keys=True, default=str) + "\n")


class _Stream:
    """A file as a plain object with write(): numpy then writes it in chunks through Python, so
    a full disk raises ENOSPC (a real file gets ndarray.tofile, whose error has no errno)."""

    def __init__(self, handle):
        self.handle = handle

    def write(self, data: bytes) -> int:
        return self.handle.write(data)


def save_npy(path: Path, array) -> None:
    """np.save through a temporary file, so a crash never leaves a short array."""
    import numpy as np

    _replace_with(Path(path), lambda handle: np.save(_Stream(handle), array))


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_file(path: Path, write: Callable[[Path], None]) -> None:
    """`write(tmp)` saves a file at a temporary name beside `path` (same suffix: Keras checks
    it), renamed to `path` once whole: a killed or disk-full save leaves no file at `path`."""
    path = Path(path)
    for stale in path.parent.glob(f".{path.stem}.*.tmp{path.suffix}"):
        stale.unlink()  # left by a killed save; this folder's writer holds its output lock
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        with writing(path):
            write(tmp)
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def save_folder(path: Path, write: Callable[[Path], None]) -> None:
    """`write(tmp)` saves a folder (a SavedModel) at a temporary name beside `path`, renamed to
    `path` once whole; an older folder at `path` is renamed away first and then removed, so a
    killed save leaves either no folder at `path` or a whole one."""
    path = Path(path)
    for stale in [*path.parent.glob(f".{path.name}.*.tmp"), *path.parent.glob(f".{path.name}.*.old")]:
        shutil.rmtree(stale)
    tmp, old = (path.with_name(f".{path.name}.{os.getpid()}.{kind}") for kind in ("tmp", "old"))
    try:
        with writing(path):
            write(tmp)
        for directory, _, names in os.walk(tmp):
            for name in names:
                _fsync(Path(directory) / name)
        if path.exists():
            os.rename(path, old)
        os.rename(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)
