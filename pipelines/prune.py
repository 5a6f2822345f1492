"""Remove old results from the workspace: `python -m pipelines prune --keep N | --older-than DATE`.

Results are grouped by stage and name (e.g. train/fashion_mnist-cnn); the
newest N complete folders of each group are kept, or everything finished
before a date is removed. Unfinished folders (resumable training) are left
alone unless asked, and a folder another process is writing is never touched.
"""
from __future__ import annotations

import fcntl
import re
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from tasks.base import read_manifest

TASK_FOLDER = re.compile(r"^(?P<name>.+)-(?P<fingerprint>[0-9a-f]{16})$")


@dataclass
class Result:
    folder: Path
    group: str
    finished: datetime | None  # None: unfinished

    @property
    def size(self) -> int:
        return sum(path.stat().st_size for path in self.folder.rglob("*") if path.is_file())


def scan(root: Path) -> list[Result]:
    results = []
    for stage_dir in sorted(path for path in root.iterdir() if path.is_dir() and not path.name.startswith(".")):
        for folder in sorted(stage_dir.iterdir()):
            match = TASK_FOLDER.match(folder.name)
            if not folder.is_dir() or not match:
                continue
            manifest = read_manifest(folder)
            finished = None
            if manifest and manifest.get("finished"):
                finished = datetime.fromisoformat(manifest["finished"])
            results.append(Result(folder, f"{stage_dir.name}/{match['name']}", finished))
    return results


def select(results: list[Result], keep: int | None, older_than: datetime | None,
           include_unfinished: bool) -> list[Result]:
    """The results to delete."""
    doomed = []
    groups: dict[str, list[Result]] = {}
    for result in results:
        groups.setdefault(result.group, []).append(result)
    for members in groups.values():
        finished = sorted((r for r in members if r.finished), key=lambda r: r.finished, reverse=True)
        unfinished = [r for r in members if not r.finished]
        for index, result in enumerate(finished):
            too_many = keep is not None and index >= keep
            too_old = older_than is not None and result.finished < older_than
            if too_many or too_old:
                doomed.append(result)
        if include_unfinished:
            doomed.extend(unfinished)
    return doomed


def _busy(folder: Path) -> bool:
    lock = folder.parent / f".{folder.name}.lock"
    if not lock.exists():
        return False
    with open(lock, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


def prune(root: Path, keep: int | None, older_than: datetime | None, include_unfinished: bool,
          dry_run: bool) -> tuple[list[tuple[Result, int]], int]:
    """Delete (or list, with dry_run) what select() picks; return [(result, bytes)] and total bytes."""
    removed = []
    for result in select(scan(root), keep, older_than, include_unfinished):
        if _busy(result.folder):
            continue
        size = result.size
        if not dry_run:
            shutil.rmtree(result.folder)
            (result.folder.parent / f".{result.folder.name}.lock").unlink(missing_ok=True)
        removed.append((result, size))
    return removed, sum(size for _, size in removed)


def parse_date(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
