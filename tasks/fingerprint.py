"""The one place that decides what a task's result depends on.

A fingerprint is a short hash of a task's *components*: significant
parameters, the code that runs (normalised source of the task module, its
TensorFlow worker module, the plugin module and every project or plugin
module they import), plugin identity, library versions that change results,
and the fingerprints of upstream tasks. Manifests store the components, so a
later run can say which one changed.

Code is hashed from its AST with docstrings removed, so comments, docstrings
and formatting never cause a rerun. Modules are located without being
imported: fingerprinting must never import TensorFlow or a plugin.
"""
from __future__ import annotations

import ast
import hashlib
import json
import os
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

from plugins.errors import TfpipeError
from plugins.registry import locate_module, source_file

# Packages of this project whose modules are followed through imports.
PROJECT_PACKAGES = frozenset({"tasks", "plugins", "pipelines"})
DIGEST_LENGTH = 16


def digest(value: Any) -> str:
    """Stable hash of a JSON-able value (dictionary order never matters)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:DIGEST_LENGTH]


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(
                getattr(body[0], "value", None), ast.Constant
            ) and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


Imports = tuple[tuple[int, str | None, str], ...]  # (level, module, name) per imported name


@lru_cache(maxsize=None)
def _parse(path: Path, mtime_ns: int, size: int) -> tuple[str, Imports]:
    """(hash of normalised AST, imports as (level, module, name)) of one file."""
    tree = ast.parse(path.read_bytes(), filename=str(path))
    imports: list[tuple[int, str | None, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imports.extend((0, alias.name, "") for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imports.extend((node.level, node.module, alias.name) for alias in node.names)
    normalised = ast.dump(_strip_docstrings(tree), annotate_fields=False, include_attributes=False)
    return hashlib.sha256(normalised.encode("utf-8")).hexdigest()[:DIGEST_LENGTH], tuple(imports)


# (module, "path|size|mtime") -> (source hash, names its imports may refer to): each task's walk
# meets the same modules again; the stat in the key keeps an edited file from being missed.
_edges: dict[tuple[str, str], tuple[str, tuple[str, ...]]] = {}


def _module_edges(module: str, path: str, disk: DiskCache | None) -> tuple[str, tuple[str, ...]]:
    stat = os.stat(path)
    key = f"{path}|{stat.st_size}|{stat.st_mtime_ns}"
    found = _edges.get((module, key))
    if found is None:
        file_hash, imports = (disk.get(key, Path(path), stat) if disk is not None
                              else _parse(Path(path), stat.st_mtime_ns, stat.st_size))
        found = _edges[module, key] = (file_hash, _imported(module, path.endswith("__init__.py"), imports))
    return found


class DiskCache:
    """Source hashes kept on disk by (path, size, mtime), so a no-op rerun parses no file.

    Loaded once per process; written back (atomically, last writer wins) when it grew.
    """

    _loaded: dict[Path, DiskCache] = {}

    def __init__(self, file: Path):
        self.file, self.dirty = file, False
        try:
            self.entries: dict[str, list] = json.loads(file.read_text("utf-8"))
        except (OSError, ValueError):
            self.entries = {}

    @classmethod
    def at(cls, file: Path) -> DiskCache:
        if file not in cls._loaded:
            cls._loaded[file] = cls(file)
        return cls._loaded[file]

    def get(self, key: str, path: Path, stat: os.stat_result) -> tuple[str, Imports]:
        """(source hash, imports) of the file whose stat gave `key`, parsed only when not cached."""
        if key not in self.entries:
            self.add(key, _parse(path, stat.st_mtime_ns, stat.st_size))
        file_hash, imports = self.entries[key]
        return file_hash, tuple(tuple(item) for item in imports)

    def add(self, key: str, value: tuple) -> None:
        path = key.rsplit("|", 2)[0]
        for stale in [old for old in self.entries if old.rsplit("|", 2)[0] == path]:
            del self.entries[stale]  # an edited file's old hash is never needed again
        self.entries[key] = [value[0], [list(item) for item in value[1]]]
        self.dirty = True

    def save(self) -> None:
        if not self.dirty:
            return
        from tasks import atomic

        try:
            atomic.write_text(self.file, json.dumps(self.entries, sort_keys=True))
            self.dirty = False
        except OSError:
            pass  # a read-only workspace only costs parsing again next time


def _candidates(module: str, is_package: bool, level: int, target: str | None, name: str) -> list[str]:
    """Module names an import statement inside `module` may refer to."""
    if level:
        package = module if is_package else module.rpartition(".")[0]
        for _ in range(level - 1):
            package = package.rpartition(".")[0]
        base = f"{package}.{target}" if target else package
    else:
        base = target or ""
    names = [base]
    if name and name != "*":
        names.append(f"{base}.{name}")
    return names


def _imported(module: str, is_package: bool, imports: Imports) -> tuple[str, ...]:
    """Every module name the import statements of `module` may refer to."""
    return tuple(candidate for level, target, name in imports
                 for candidate in _candidates(module, is_package, level, target, name) if candidate)


def code_hashes(modules: Iterable[str], follow: Iterable[str] = (), cache_file: Path | None = None) -> dict[str, str]:
    """Map module name -> normalised source hash, following imports transitively.

    Imports are followed into this project's packages and into the top-level
    packages named in `follow` (a plugin's own package); the standard library
    and third-party libraries are covered by recorded versions instead.
    """
    roots = set(PROJECT_PACKAGES) | set(follow)
    pending = list(modules)
    search_path = tuple(sys.path)
    missing = [module for module in pending if locate_module(module, search_path) is None]
    if missing:
        # A result must never be keyed without its code: fail loudly instead.
        raise TfpipeError(f"cannot find the source of {', '.join(missing)} to fingerprint it; is the "
                          "package installed (pip install -e .) and importable?")
    seen: dict[str, str] = {}
    disk = DiskCache.at(cache_file) if cache_file is not None else None
    while pending:
        module = pending.pop()
        if module in seen:
            continue
        path = source_file(module, search_path)
        if path is None:
            continue
        file_hash, imported = _module_edges(module, path, disk)
        seen[module] = file_hash
        # Importing a.b.c runs a/__init__.py and a/b/__init__.py too.
        parent = module.rpartition(".")[0]
        if parent:
            pending.append(parent)
        for candidate in imported:
            if candidate.partition(".")[0] in roots and candidate not in seen:
                pending.append(candidate)
    if disk is not None:
        disk.save()
    return dict(sorted(seen.items()))
