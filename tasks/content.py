"""Content hashes of local files, cached by (path, size, mtime) so reruns stay fast."""
from __future__ import annotations

import json
from pathlib import Path

from tasks import atomic
from tasks.download import sha256_of


def cached_sha256(path: Path, cache_file: Path | None) -> str:
    path = Path(path).resolve()
    stat = path.stat()
    key = f"{path}|{stat.st_size}|{stat.st_mtime_ns}"
    cache: dict[str, str] = {}
    if cache_file is not None:
        try:
            cache = json.loads(cache_file.read_text("utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            cache = {}
        if key in cache:
            return cache[key]
    value = sha256_of(path)
    if cache_file is not None:
        # Drop stale entries of the same file so the cache does not grow forever.
        cache = {k: v for k, v in cache.items() if not k.startswith(f"{path}|")}
        cache[key] = value
        try:
            atomic.write_json(cache_file, cache)
        except OSError:
            pass  # a read-only workspace only costs a rehash next time
    return value
