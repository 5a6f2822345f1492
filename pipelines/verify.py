"""Check a whole workspace against its manifests: `python -m pipelines verify [--fix]`.

Every task folder with a manifest is compared with it (tasks/integrity.py): each listed file
present with its size and sha256, nothing else beside them, the manifest's seal intact. Folders
without a manifest are unfinished (a rerun finishes or resumes them), not damaged. `--fix` moves
each damaged folder to ``<workspace>/.quarantine/<time>/<stage>/<folder>`` (never deletes): the
next run redoes it.
"""
from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from pipelines.prune import TASK_FOLDER
from tasks.content import HashCache
from tasks.integrity import QUARANTINE, Check, check


def task_folders(root: Path) -> list[Path]:
    """`<stage>/<name>-<fingerprint>` folders of the workspace (hidden folders are its own:
    caches, GPU slots, the quarantine)."""
    return [folder for stage in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
            for folder in sorted(stage.iterdir()) if folder.is_dir() and TASK_FOLDER.match(folder.name)]


@contextmanager
def unless_busy(folder: Path) -> Iterator[bool]:
    """Hold the folder's output lock while it is checked; yield False if a run is writing it."""
    lock = folder.parent / f".{folder.name}.lock"
    if not lock.exists():
        yield True
        return
    with open(lock, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def quarantine(root: Path, folder: Path, stamp: str) -> Path:
    target = root / QUARANTINE / stamp / folder.parent.name / folder.name
    target.parent.mkdir(parents=True, exist_ok=True)
    os.rename(folder, target)  # same file system: a rename, nothing copied or deleted
    return target


def verify_workspace(root: Path, fix: bool, say=print) -> int:
    """Check every task folder under `root`, say what was found; return how many damaged folders
    remain (not fixed)."""
    cache = HashCache.at(root / ".cache" / "file-hashes.json")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    counts = {"ok": 0, "damaged": 0, "unfinished": 0, "older": 0, "busy": 0}
    remaining = 0
    for folder in task_folders(root):
        with unless_busy(folder) as free:
            found = check(folder, cache) if free else Check(folder, "busy")
            counts[found.state] += 1
            if found.state == "busy":
                say(f"busy        {folder}  (a run is writing it; not checked)")
            elif found.state == "unfinished":
                say(f"unfinished  {folder}  (no manifest: a rerun finishes it)")
            elif found.state == "older":
                say(f"unchecked   {folder}  (no file list: written by an older tfpipe)")
            elif found.state == "damaged":
                say(f"DAMAGED     {folder}")
                for problem in found.problems:
                    say(f"    {problem}")
                if fix:
                    say(f"    moved to {quarantine(root, folder, stamp)}")
                else:
                    remaining += 1
    checked = counts["ok"] + counts["damaged"]
    say(f"{checked} finished folders checked in {root}: {counts['ok']} match their manifests, "
        f"{counts['damaged']} damaged" + (" (moved to quarantine; rerun to redo them)" if fix and counts["damaged"]
                                          else "")
        + f"; {counts['unfinished']} unfinished, {counts['older']} from an older tfpipe (unchecked), "
          f"{counts['busy']} busy")
    if remaining:
        say(f"run `python -m pipelines verify --fix` to move the {remaining} damaged folders to "
            f"{root / QUARANTINE}/ (nothing is deleted), then rerun to redo them")
    return remaining
