"""Fetch a pinned remote file: retries with backoff, size and sha256 checks, atomic write."""
from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from plugins.datasets.api import RemoteFile
from plugins.errors import TfpipeError
from tasks.atomic import DiskFull, writing

logger = logging.getLogger(__name__)
CHUNK = 1 << 20


class ChecksumMismatch(TfpipeError):
    pass


def mirror_path(mirror: str | None, name: str, file: str = "") -> str:
    """Where a mirror copy of dataset `name` goes: the real folder, or ``$TFPIPE_DATA_MIRROR/...``
    when no mirror is set."""
    root = mirror if mirror else "$TFPIPE_DATA_MIRROR"
    return "/".join(part for part in (root.rstrip("/"), name, file) if part)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _download_once(url: str, dest: Path, expected_size: int | None, timeout: float) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": "tfpipe"})
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    try:
        with (urllib.request.urlopen(request, timeout=timeout) as response, writing(dest),
              os.fdopen(fd, "wb") as out):
            total = expected_size or int(response.headers.get("Content-Length") or 0)
            done, next_report = 0, 0.1
            for block in iter(lambda: response.read(CHUNK), b""):
                out.write(block)
                done += len(block)
                if total and done / total >= next_report:
                    logger.info("downloading %s: %d%% of %.1f MB", url, 100 * done // total, total / 1e6)
                    next_report += 0.1
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def verify(path: Path, remote: RemoteFile, url: str) -> None:
    """Raise ChecksumMismatch (and delete the file) unless it matches the pinned size and sha256
    (each checked only where known)."""
    size = path.stat().st_size
    problem = None
    # A file without a published size or checksum (a user's URL) is checked by its reader.
    if remote.size is not None and size != remote.size:
        problem = f"size {size} bytes, expected {remote.size}"
    elif remote.sha256:
        actual = sha256_of(path)
        if actual != remote.sha256:
            problem = f"sha256 {actual}, expected {remote.sha256}"
    if problem:
        head = path.read_bytes()[:64].lstrip().lower()
        if head.startswith((b"<!doctype", b"<html", b"<?xml")):
            problem += " (the server sent an HTML page, not the data)"
        path.unlink(missing_ok=True)
        raise ChecksumMismatch(f"{url}: {problem}")


def fetch(remote: RemoteFile, dest: Path, attempts: int = 3, backoff_s: float = 1.0,
          timeout_s: float = 60.0, mirror_path: str | None = None, beside: tuple[str, ...] = ()) -> str:
    """Download `remote` to `dest`, trying each URL with retries; return the URL used.

    `mirror_path` is where a copy would be found without a network; the error names it.
    It starts with ``$TFPIPE_DATA_MIRROR`` when no mirror is set (e.g.
    ``$TFPIPE_DATA_MIRROR/nietzsche/nietzsche.txt``), and the error then says to set one.
    `beside`: the other files the dataset needs in that folder, named in the error too.
    A full disk is not retried: it raises DiskFull at once.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    failures: dict[str, tuple[int, str]] = {}  # url -> (attempts, last reason)
    for url in remote.urls:
        for attempt in range(1, attempts + 1):
            try:
                _download_once(url, dest, remote.size, timeout_s)
                verify(dest, remote, url)
                return url
            except DiskFull:
                raise
            except (urllib.error.URLError, OSError, ChecksumMismatch) as exc:
                reason = str(getattr(exc, "reason", None) or exc).removeprefix(f"{url}: ")
                failures[url] = (attempt, reason)
                logger.warning("download failed: %s (attempt %d): %s", url, attempt, reason)
                if attempt < attempts:
                    time.sleep(backoff_s * 2 ** (attempt - 1))
    tried = "; ".join(f"{url}: {reason} ({count} attempt{'s' * (count > 1)})"
                      for url, (count, reason) in failures.items())
    if mirror_path and mirror_path.startswith("$"):
        where = (f"set TFPIPE_DATA_MIRROR (or data.mirror in your config) to a folder and put "
                 f"the file at {mirror_path}")
    elif mirror_path:
        where = f"put the file at {mirror_path}"
    else:
        where = (f"put {remote.name} in a mirror folder, in the sub-folder named after the "
                 "dataset, and set TFPIPE_DATA_MIRROR (or data.mirror in your config) to that "
                 "mirror folder")
    if beside:
        where += f", and beside it {', '.join(beside)}"
    raise TfpipeError(f"could not download {remote.name}: {tried}. Without internet, {where}")
