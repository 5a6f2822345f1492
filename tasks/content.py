"""Content hashes of local files and folders, cached by (path, size, mtime) so reruns stay fast."""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

from tasks import atomic
from tasks.download import sha256_of


def _load(cache_file: Path | None) -> dict[str, list]:
    if cache_file is None:
        return {}
    try:
        cache = json.loads(Path(cache_file).read_text("utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    if not isinstance(cache, dict):
        return {}
    # Entries are path -> [size, mtime_ns, sha256]; anything else is from an older layout.
    return {k: v for k, v in cache.items() if isinstance(v, list) and len(v) == 3}


def cached_sha256_many(paths: Iterable[Path], cache_file: Path | None) -> list[str]:
    """sha256 of each file, hashing only files whose size or mtime changed since the last call.
    The cache is read once and written once, however many files there are."""
    cache = _load(cache_file)
    values, changed = [], False
    for path in paths:
        path = Path(path).resolve()
        stat = path.stat()
        key, stamp = str(path), [stat.st_size, stat.st_mtime_ns]
        entry = cache.get(key)
        if entry is None or entry[:2] != stamp:
            entry = [*stamp, sha256_of(path)]
            cache[key] = entry
            changed = True
        values.append(entry[2])
    if changed and cache_file is not None:
        try:
            atomic.write_json(Path(cache_file), cache)
        except OSError:
            pass  # a read-only workspace only costs a rehash next time
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
