"""An index of completed manifests per stage and run name, so `explain` reads one file, not all.

`explain` compares a task that will run with the closest completed run of the
same name. Parsing every manifest of that name made it 1.7-2.9x slower once a
run name had thousands of old folders. Each completed task appends one line to
``<stage>/.index/<run name>.jsonl``: its folder, task family, finish time and one
digest per component group (params, code, upstream, plugin, ...). A group's
*items* (one parameter, one module's code hash, one upstream fingerprint: what
`explain` counts as one change) are digested into ``<run name>.groups``, once
per distinct group (a thousand runs of one code share one line). The closest run
is scored from these two files, each group compared once, and only the chosen
run's own manifest is read.

The index is a cache: a line whose folder is gone is ignored, a damaged line is
skipped, and a completed folder without a line (written by an older tfpipe, or
when appending failed) is read from its manifest and added.
"""
from __future__ import annotations

import hashlib
import heapq
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

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


Grouped = dict[str, dict[str, str]]  # group -> item -> digest of its value


def grouped_digests(components: dict[str, Any]) -> Grouped:
    grouped: Grouped = {}
    for (group, key), value in component_items(components).items():
        grouped.setdefault(group, {})[key] = _digest(value)
    return grouped


def differing_items(old: dict[str, str], new: dict[str, str]) -> int:
    return sum(1 for key in old.keys() | new.keys() if old.get(key) != new.get(key))


def differences(old: Grouped, new: Grouped) -> int:
    """How many component items differ (what explain lists as changes)."""
    return sum(differing_items(old.get(group, {}), new.get(group, {})) for group in old.keys() | new.keys())


class Entry(NamedTuple):  # a tuple: thousands are read per explain
    stage_dir: Path
    name: str  # the folder's name
    task: str
    finished: str
    groups: dict[str, str]  # group -> digest of its items

    @property
    def folder(self) -> Path:
        return self.stage_dir / self.name


def index_file(stage_dir: Path, run_name: str) -> Path:
    return stage_dir / INDEX_DIR / f"{run_name}.jsonl"


def groups_file(stage_dir: Path, run_name: str) -> Path:
    return stage_dir / INDEX_DIR / f"{run_name}.groups"


def _append(target: Path, text: str) -> None:
    # One write in append mode: concurrent writers never interleave within it.
    fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        os.write(fd, text.encode("utf-8"))
    finally:
        os.close(fd)


_known: dict[Path, tuple[int, set[str]]] = {}  # side file -> (bytes read, group keys in them)


def _known_groups(target: Path) -> set[str]:
    """Group keys in a side file; a process adding many runs reads only what others appended."""
    done, keys = _known.get(target, (0, set()))
    try:
        with open(target, "rb") as handle:
            handle.seek(done)
            tail = handle.read()
    except OSError:
        return set()
    tail = tail[: tail.rfind(b"\n") + 1]  # a line still being written is read next time
    keys |= {line.partition(b"\t")[0].decode("utf-8", "replace") for line in tail.splitlines()}
    _known[target] = (done + len(tail), keys)
    return keys


def record(folder: Path, run_name: str, manifest: dict[str, Any]) -> Entry:
    """Add a completed folder to its stage's index. Best effort: a folder missing from the
    index is read from its manifest by `entries`."""
    grouped = grouped_digests(manifest.get("components", {}))
    entry = Entry(folder.parent, folder.name, str(manifest.get("task")), str(manifest.get("finished", "")),
                  {group: _digest(items) for group, items in grouped.items()})
    try:
        (folder.parent / INDEX_DIR).mkdir(exist_ok=True)
        side = groups_file(folder.parent, run_name)
        known = _known_groups(side)
        new = "".join(f"{group}:{digest}\t{json.dumps(grouped[group], separators=(',', ':'))}\n"
                      for group, digest in entry.groups.items() if f"{group}:{digest}" not in known)
        if new:
            _append(side, new)  # before the line that refers to it
        _append(index_file(folder.parent, run_name), _line(entry))
    except OSError:
        pass
    return entry


# One line per run, tab-separated (about three times faster to read than JSON):
# folder, task, finished, then group:digest per group. Names and digests hold no tab or colon.
def _line(entry: Entry) -> str:
    groups = "\t".join(f"{group}:{digest}" for group, digest in entry.groups.items())
    return f"{entry.name}\t{entry.task}\t{entry.finished}\t{groups}\n"


def indexed(stage_dir: Path, run_name: str) -> Iterator[Entry]:
    try:
        text = index_file(stage_dir, run_name).read_text("utf-8")
    except OSError:
        return
    for line in text.splitlines():
        fields = line.split("\t")
        groups = fields[3:]
        if "" in groups:
            groups = [group for group in groups if group]
        try:
            parsed = dict(group.split(":", 1) for group in groups)  # a group without ":" raises
        except ValueError:
            parsed = {}
        if not parsed:
            continue  # a line cut short by a crash
        yield Entry(stage_dir, fields[0], fields[1], fields[2], parsed)


def entries(stage_dir: Path, run_name: str, task: str, is_run_folder, read_manifest) -> list[Entry]:
    """Completed runs of `task` named `run_name` in `stage_dir`: indexed ones from the index,
    the others from their manifests (and indexed for next time). `is_run_folder(name)` says a
    folder name belongs to this run name; `read_manifest(folder)` reads a manifest (or None)."""
    known = {entry.name: entry for entry in indexed(stage_dir, run_name)}
    prefix = f"{run_name}-"
    try:
        names = [name for name in os.listdir(stage_dir) if name.startswith(prefix) and is_run_folder(name)]
    except OSError:
        return []
    found = []
    for name in names:
        entry = known.get(name)
        if entry is None:
            manifest = read_manifest(stage_dir / name)
            if not manifest:
                continue  # unfinished
            entry = record(stage_dir / name, run_name, manifest)
        if entry.task == task:
            found.append(entry)
    return found


class Scorer:
    """Counts the items in which an indexed run differs from `components`, comparing each
    distinct group once."""

    def __init__(self, stage_dir: Path, run_name: str, components: dict[str, Any]):
        self.wanted = grouped_digests(components)
        self.wanted_groups = {group: _digest(items) for group, items in self.wanted.items()}
        self.side = groups_file(stage_dir, run_name)
        self._lines: dict[str, str] | None = None
        self._counts: dict[tuple[str, str | None], int] = {}

    def _items(self, group: str, digest: str) -> dict[str, str] | None:
        if self._lines is None:
            try:
                text = self.side.read_text("utf-8")
            except OSError:
                text = ""
            self._lines = dict(line.split("\t", 1) for line in text.splitlines() if "\t" in line)
        try:
            items = json.loads(self._lines[f"{group}:{digest}"])
        except (KeyError, ValueError):
            return None
        return items if isinstance(items, dict) else None

    def changes(self, entry: Entry) -> int:
        total = 0
        for group, digest in entry.groups.items():
            if digest != self.wanted_groups.get(group):
                total += self._count(group, digest)
        for group in self.wanted_groups.keys() - entry.groups.keys():
            total += self._count(group, None)
        return total

    def at_least(self, entry: Entry) -> int:
        """A lower bound of changes(entry) from the index line alone: each differing group holds
        at least one differing item; a group the run lacks counts all its items."""
        differing = len(entry.groups.items() - self.wanted_groups.items())  # groups with another digest
        # A missing group costs what changes() counts for it; that count reads no side file.
        return differing + sum(self._count(group, None) for group in self.wanted_groups.keys() - entry.groups.keys())

    def _count(self, group: str, digest: str | None) -> int:
        if (group, digest) not in self._counts:
            wanted = self.wanted.get(group, {})
            items = {} if digest is None else self._items(group, digest)
            # Unknown items (a damaged side file): count the whole group as changed.
            count = differing_items(items, wanted) if items is not None else len(wanted)
            # Another digest means another value somewhere: at least one change (at_least relies on it).
            self._counts[group, digest] = count if digest is None else max(1, count)
        return self._counts[group, digest]

    def fewest_changes_first(self, runs: list[Entry]) -> Iterator[Entry]:
        """`runs` as a stable sort by changes() orders them, counting only as many as it yields:
        each waits in a queue under its lower bound and is counted when it reaches the front
        (the closest run is usually found after a few counts, not after all)."""
        queue = [(self.at_least(run), position, False) for position, run in enumerate(runs)]
        heapq.heapify(queue)
        while queue:
            count, position, exact = heapq.heappop(queue)
            if exact:
                yield runs[position]
            else:
                heapq.heappush(queue, (self.changes(runs[position]), position, True))
