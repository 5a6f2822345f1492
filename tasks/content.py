"""Content hashes of local files and folders, cached on disk so reruns stay fast.

A cached hash is reused only while the file's size, mtime, inode and ctime are all unchanged:
rewriting a file and restoring its mtime (``touch -r``) still moves its ctime, and replacing it
with another file changes its inode. A file changed less than RACY_NS before it was hashed is
not cached: a second write within the same timestamp tick would leave all four unchanged (git's
"racily clean" files). Pure hashlib: the Luigi process uses it without numpy or TensorFlow.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar

from tasks import atomic
from tasks.download import sha256_of

RACY_NS = 1_000_000_000


def _stamp(stat: os.stat_result) -> list[int]:
    return [stat.st_size, stat.st_mtime_ns, stat.st_ino, stat.st_ctime_ns]


class HashCache:
    """path -> [size, mtime_ns, inode, ctime_ns, sha256], read once per process and written back
    (atomically, last writer wins: a lost entry only costs a rehash) when it grew."""

    _loaded: ClassVar[dict[Path, HashCache]] = {}

    def __init__(self, file: Path | None):
        self.file, self.dirty, self.hashed = file, False, 0
        self.entries: dict[str, list] = {}
        if file is not None:
            try:
                loaded = json.loads(Path(file).read_text("utf-8"))
            except (OSError, ValueError):
                loaded = {}
            # Entries of another length are from an older layout (no inode or ctime): rehash.
            if isinstance(loaded, dict):
                self.entries = {k: v for k, v in loaded.items() if isinstance(v, list) and len(v) == 5}

    @classmethod
    def at(cls, file: Path | None) -> HashCache:
        if file is None:
            return cls(None)
        file = Path(file)
        if file not in cls._loaded:
            cls._loaded[file] = cls(file)
        return cls._loaded[file]

    def sha256(self, path: Path) -> str:
        """sha256 of a file, read only when its stamp changed since it was last hashed."""
        path = Path(path).resolve()
        before = os.stat(path)
        key = str(path)
        entry = self.entries.get(key)
        if entry is not None and entry[:4] == _stamp(before):
            return entry[4]
        started = time.time_ns()
        value = sha256_of(path)
        self.hashed += 1
        after = os.stat(path)
        settled = max(after.st_mtime_ns, after.st_ctime_ns) < started - RACY_NS
        if _stamp(after) == _stamp(before) and settled:
            self.entries[key] = [*_stamp(after), value]
            self.dirty = True
        return value

    def save(self) -> None:
        if not self.dirty or self.file is None:
            return
        # Forget files of this workspace that are gone (rotated checkpoints, pruned folders).
        workspace = str(Path(self.file).resolve().parent.parent) + os.sep
        self.entries = {key: value for key, value in self.entries.items()
                        if not key.startswith(workspace) or os.path.exists(key)}
        try:
            atomic.write_text(Path(self.file), json.dumps(self.entries, sort_keys=True))
            self.dirty = False
        except OSError:
            pass  # a read-only workspace only costs a rehash next time


def cached_sha256_many(paths: Iterable[Path], cache_file: Path | None) -> list[str]:
    """sha256 of each file, hashing only files that changed since the last call."""
    cache = HashCache.at(cache_file)
    values = [cache.sha256(path) for path in paths]
    cache.save()
    return values


def cached_sha256(path: Path, cache_file: Path | None) -> str:
    return cached_sha256_many([path], cache_file)[0]


def tree_files(folder: Path) -> list[Path]:
    """Every regular file under `folder`, sorted, skipping hidden files and folders."""
    folder = Path(folder)
    return sorted(path for path in folder.rglob("*") if path.is_file()
                  and not any(part.startswith(".") for part in path.relative_to(folder).parts))


def content_sha256(path: Path, cache_file: Path | None) -> str:
    """sha256 of a file, or of a folder: of its sorted relative paths and their files' sha256."""
    path = Path(path)
    if not path.is_dir():
        return cached_sha256(path, cache_file)
    files = tree_files(path)
    digest = hashlib.sha256()
    for file, value in zip(files, cached_sha256_many(files, cache_file)):
        digest.update(f"{file.relative_to(path).as_posix()}\t{value}\n".encode())
    return digest.hexdigest()
