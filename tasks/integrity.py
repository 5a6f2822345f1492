"""What a finished task folder holds, and whether it still holds it (pure hashlib, no numpy or TF).

A manifest lists every file its task produced (size and sha256) and carries a seal: the sha256
of its own canonical JSON. Before a task reads an upstream folder, the folder is checked against
its manifest: every listed file present with its size and sha256, nothing else beside them, and
the seal intact. The seal detects edits and corruption; anyone who can write the folder can
also recompute it, so it is no defence against a determined attacker.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plugins.errors import TfpipeError
from tasks import atomic
from tasks.content import HashCache

MANIFEST = "manifest.json"
# One line per process that started producing a folder: appended on every attempt, so not a
# product of the task (the output lock lives beside the folder, not in it).
ATTEMPTS = "attempts.jsonl"
UNLISTED = frozenset({MANIFEST, ATTEMPTS})
QUARANTINE = ".quarantine"
FIX = "python -m pipelines verify --fix"


class IntegrityError(TfpipeError):
    """A finished folder no longer matches its manifest: `problem` names the file and what
    differs; the message adds what to do."""

    def __init__(self, problem: str, folder: Path, state: str = "damaged"):
        self.problem, self.folder, self.state = problem, Path(folder), state
        super().__init__(f"{problem}; {advice(self.folder, state)}")


def advice(folder: Path, state: str = "damaged") -> str:
    """What to do about a folder in `state`, for the end of a message."""
    if state == "older":
        return "nothing is read from that folder. Move it away (or prune it), then rerun to redo it"
    if state == "unfinished":
        return "nothing is read from that folder. Rerun: its task runs first"
    return (f"nothing is read from that folder. Run `{FIX}` (it moves damaged folders to "
            f"{Path(folder).parent.parent / QUARANTINE}/, deleting nothing), then rerun to redo them")


def seal_of(manifest: dict[str, Any]) -> str:
    """sha256 of the manifest's canonical JSON, its seal left out."""
    content = {key: value for key, value in manifest.items() if key != "seal"}
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def write_manifest(folder: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Write `manifest` with its seal, atomically, and return what was written. The seal is taken
    over the JSON round trip, so a reader recomputes it from exactly what it reads."""
    value = json.loads(json.dumps(manifest, default=str))
    value["seal"] = seal_of(value)
    atomic.write_json(Path(folder) / MANIFEST, value)
    return value


def read_sealed(folder: Path) -> dict[str, Any] | None:
    """The folder's manifest (None: there is none, the task never finished); IntegrityError
    when it is unreadable, edited, damaged or too old to carry a file list."""
    path = Path(folder) / MANIFEST
    try:
        text = path.read_text("utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise IntegrityError(f"{path}: cannot read it ({exc.strerror})", folder) from exc
    try:
        manifest = json.loads(text)
    except ValueError:
        manifest = None
    if not isinstance(manifest, dict):
        raise IntegrityError(f"{path}: not a valid manifest (damaged JSON)", folder)
    if "seal" not in manifest or "files" not in manifest:
        raise IntegrityError(f"{path}: no file list (written by an older tfpipe), so its files cannot "
                             "be checked", folder, "older")
    if manifest["seal"] != seal_of(manifest):
        raise IntegrityError(f"{path}: edited or damaged (its seal does not match its content)", folder)
    return manifest


# ----- the files of a folder ---------------------------------------------------------------

def walk(folder: Path) -> tuple[list[str], list[str]]:
    """(regular files, anything else: links, devices, ...) under `folder`, as sorted relative
    paths; the manifest and the attempts log are not products of the task."""
    files, others = [], []
    for directory, subdirs, names in os.walk(folder):
        base = Path(directory)
        for name in list(subdirs):
            if (base / name).is_symlink():  # never followed: reported, not listed
                subdirs.remove(name)
                names.append(name)
        for name in names:
            path = base / name
            relative = path.relative_to(folder).as_posix()
            if relative in UNLISTED:
                continue
            (files if path.is_file() and not path.is_symlink() else others).append(relative)
    return sorted(files), sorted(others)


def file_list(folder: Path, cache: HashCache) -> dict[str, dict[str, Any]]:
    """{relative path: {"bytes", "sha256"}} of every file the task produced, for its manifest."""
    folder = Path(folder)
    files, others = walk(folder)
    if others:
        raise TfpipeError(f"{folder / others[0]}: not a regular file; a task folder may hold "
                          "regular files only (its manifest records their sha256)")
    listed = {name: {"bytes": (folder / name).stat().st_size, "sha256": cache.sha256(folder / name)}
              for name in files}
    cache.save()
    return listed


@dataclass
class Check:
    """What `check` found in one folder: state is ok, damaged, unfinished or older."""

    folder: Path
    state: str
    problems: list[str] = field(default_factory=list)


def check(folder: Path, cache: HashCache) -> Check:
    """Compare a folder with its manifest; every difference is a problem (read nothing else)."""
    folder = Path(folder)
    try:
        manifest = read_sealed(folder)
    except IntegrityError as exc:
        return Check(folder, exc.state, [exc.problem])
    if manifest is None:
        return Check(folder, "unfinished")
    listed: dict[str, dict[str, Any]] = manifest["files"]
    files, others = walk(folder)
    problems = [f"{folder / name}: not in the manifest (unexpected file)" for name in sorted(set(files) - set(listed))]
    problems += [f"{folder / name}: not a regular file (unexpected)" for name in others]
    for name, entry in sorted(listed.items()):
        path = folder / name
        try:
            size = path.stat().st_size if path.is_file() and not path.is_symlink() else None
        except OSError:
            size = None
        if size is None:
            if name not in others:
                problems.append(f"{path}: missing")
        elif size != entry["bytes"]:
            problems.append(f"{path}: size {size} bytes, recorded {entry['bytes']}")
        elif cache.sha256(path) != entry["sha256"]:
            problems.append(f"{path}: sha256 differs from the recorded {entry['sha256'][:16]}...")
    cache.save()
    return Check(folder, "damaged" if problems else "ok", problems)


def verify(folder: Path, cache: HashCache) -> None:
    """Raise IntegrityError, naming the first differing file, unless `folder` matches its
    manifest."""
    found = check(folder, cache)
    if found.state == "ok":
        return
    if found.state == "unfinished":  # its task must have finished before anything reads it
        raise IntegrityError(f"{found.folder / MANIFEST}: missing, the folder is unfinished", folder,
                             "unfinished")
    if found.state == "older":
        raise IntegrityError(found.problems[0], folder, "older")
    more = f" (and {len(found.problems) - 1} more)" if len(found.problems) > 1 else ""
    raise IntegrityError(f"{found.problems[0]}{more}: {found.folder} no longer matches its manifest", folder)
