"""An index of completed manifests per stage and run name, so `explain` reads one file, not all.

`explain` compares a task that will run with the closest completed run of the
same name. Parsing every manifest of that name made it 1.7-2.9x slower once a
run name had thousands of old folders. Each completed task appends one line to
``<stage>/.index/<run name>.jsonl``: its folder, task family, finish time and a
short digest of each *component item* (one parameter, one module's code hash,
the plugin, an upstream fingerprint: what `explain` counts as one change). The
closest run is then scored from the index, and only its own manifest is read.

The index is a cache: a line whose folder is gone is ignored, a damaged line is
skipped, and a completed folder without a line (written by an older tfpipe, or
when appending failed) is read from its manifest and added.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

INDEX_DIR = ".index"
# Component kinds in the order explain lists their changes; other manifest keys come last.
KINDS = ("params", "code", "plugin", "tensorflow", "source", "upstream")


def flatten_dict(value: Any, prefix: str = "") -> dict[str, Any]:
    """{"model_params": {"units": 8}} -> {"model_params.units": 8}; other values stay whole."""
    if isinstance(value, dict) and value:
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(flatten_dict(item, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: value} if prefix else {}


def component_items(components: dict[str, Any]) -> dict[tuple[str, str], Any]:
    """(kind, key) -> value for every item explain compares: parameters flattened, one entry per
    module of code and per upstream task, the rest whole."""
    items: dict[tuple[str, str], Any] = {}
    for key, value in flatten_dict(components.get("params", {})).items():
        items["params", key] = value
    for kind in ("code", "upstream"):
        for key, value in components.get(kind, {}).items():
            items[kind, key] = value
    for key, value in components.items():
        if key not in ("params", "code", "upstream"):
            items[key, key] = value
    return items


def item_order(item: tuple[str, str]) -> tuple[int, str, str]:
    kind, key = item
    return (KINDS.index(kind) if kind in KINDS else len(KINDS), kind, key)


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def item_digests(components: dict[str, Any]) -> dict[str, str]:
    return {f"{kind}:{key}": _digest(value) for (kind, key), value in component_items(components).items()}


@dataclass(frozen=True)
class Entry:
    folder: Path
    task: str
    finished: str
    digests: dict[str, str]


def index_file(stage_dir: Path, run_name: str) -> Path:
    return stage_dir / INDEX_DIR / f"{run_name}.jsonl"


def _line(folder: Path, manifest: dict[str, Any]) -> str:
    return json.dumps({"folder": folder.name, "task": manifest.get("task"), "finished": manifest.get("finished", ""),
                       "digests": item_digests(manifest.get("components", {}))}, separators=(",", ":")) + "\n"


def record(folder: Path, run_name: str, manifest: dict[str, Any]) -> None:
    """Append a completed folder's line. Best effort: a missing line is rebuilt by `entries`."""
    target = index_file(folder.parent, run_name)
    try:
        target.parent.mkdir(exist_ok=True)
        # One write of one line in append mode: concurrent writers never interleave within it.
        fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            os.write(fd, _line(folder, manifest).encode("utf-8"))
        finally:
            os.close(fd)
    except OSError:
        pass


def _indexed(target: Path) -> Iterator[dict[str, Any]]:
    try:
        text = target.read_text("utf-8")
    except OSError:
        return
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # a line cut short by a crash
        if isinstance(entry, dict) and isinstance(entry.get("digests"), dict):
            yield entry


def entries(stage_dir: Path, run_name: str, task: str, is_run_folder, read_manifest) -> list[Entry]:
    """Completed runs of `task` named `run_name` in `stage_dir`: indexed ones from the index,
    the others from their manifests (and indexed for next time). `is_run_folder(name)` says a
    folder name belongs to this run name; `read_manifest(folder)` reads a manifest (or None)."""
    target = index_file(stage_dir, run_name)
    known = {entry["folder"]: entry for entry in _indexed(target)}
    found = []
    try:
        names = [item.name for item in os.scandir(stage_dir) if is_run_folder(item.name)]
    except OSError:
        return []
    for name in names:
        entry = known.get(name)
        if entry is None:
            manifest = read_manifest(stage_dir / name)
            if not manifest:
                continue  # unfinished
            record(stage_dir / name, run_name, manifest)
            entry = json.loads(_line(stage_dir / name, manifest))
        if entry.get("task") == task:
            found.append(Entry(stage_dir / name, task, str(entry.get("finished", "")), entry["digests"]))
    return found


def differences(a: dict[str, str], b: dict[str, str]) -> int:
    """How many component items differ between two digest maps."""
    return sum(1 for key in a.keys() | b.keys() if a.get(key) != b.get(key))
