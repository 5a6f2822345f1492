"""Find plugins from package metadata; load one on demand. The one plugin loader of tfpipe.

One entry-point group per plugin kind (``tfpipe.models``, ``tfpipe.devices``,
``tfpipe.datasets``, ``tfpipe.executors``); each kind has one :class:`PluginKind`
below (MODELS, DEVICES, DATASETS, EXECUTORS) and nothing else looks plugins up.

- Finding reads entry points only (``importlib.metadata``) and never imports a
  plugin, so listing plugins or fingerprinting tasks never imports TensorFlow.
- A plugin's KIND (``image_classifier``, ``char_language_model``,
  ``image_classification``, ``text_corpus``, ...) is read from its source
  without importing it, so a wrong kind is refused in the Luigi process at once.
- Loading imports exactly one plugin; any failure becomes
  :class:`FailedToLoadPlugin` naming the plugin, its distribution and the cause,
  and one broken plugin never hides the others.
- Two distributions registering one name is an error naming both, raised when
  that name is used.
"""
from __future__ import annotations

import ast
import copy
import functools
import importlib.machinery
import importlib.metadata
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plugins.errors import TfpipeError


class PluginError(TfpipeError):
    """A plugin could not be found or loaded; the message says which and why."""


class UnknownPlugin(PluginError):
    pass


class FailedToLoadPlugin(PluginError):
    pass


class WrongKind(PluginError):
    pass


class DuplicatePlugin(PluginError):
    pass


@dataclass(frozen=True)
class PluginInfo:
    kind: str  # the plugin kind: "models", "devices", "datasets" or "executors"
    name: str
    value: str  # "module" or "module:attribute"
    distribution: str
    version: str

    @property
    def module(self) -> str:
        return self.value.partition(":")[0].strip()

    @property
    def top_package(self) -> str:
        return self.module.split(".")[0]

    def identity(self) -> dict[str, str]:
        return {"name": self.name, "distribution": self.distribution, "version": self.version,
                "entry_point": self.value}

    def declared_kind(self) -> str | None:
        """The module's top-level ``KIND = "..."``, read from its source without importing it."""
        path = locate_module(self.module)
        if path is None:
            return None
        stat = path.stat()
        return _declared_kind(path, stat.st_mtime_ns, stat.st_size)

    def declared_defaults(self) -> dict[str, Any] | None:
        """The module's top-level ``DEFAULTS = {...}``, read from its source without importing it
        (``ast.literal_eval``); None when the source cannot be read or DEFAULTS is not a literal
        mapping (then only loading the plugin can tell its options)."""
        found = self.declared("DEFAULTS")
        return copy.deepcopy(found) if isinstance(found, dict) else None

    def declared_limits(self) -> dict[str, dict[str, Any]]:
        """The module's optional top-level ``LIMITS = {"units": {"minimum": 1}, ...}``: per option,
        the range its value must be in (keys minimum, maximum, open_min, open_max, as in
        pipelines/settings.py), read from source like DEFAULTS; {} when absent."""
        found = self.declared("LIMITS")
        if not isinstance(found, dict):
            return {}
        return {key: dict(limit) for key, limit in found.items() if isinstance(limit, dict)}

    def declared(self, name: str) -> Any:
        """A top-level ``NAME = <literal>`` of the module (one of LITERALS), read from its source
        without importing it; None when absent, not a literal, or the source cannot be read."""
        path = locate_module(self.module)
        if path is None:
            return None
        stat = path.stat()
        return _module_literals(path, stat.st_mtime_ns, stat.st_size).get(name)

    def describe(self) -> str:
        return f"{self.kind} plugin {self.name!r} ({self.value}) from distribution {self.distribution} {self.version}"


def locate_module(name: str, search_path: tuple[str, ...] | None = None) -> Path | None:
    """Path of a module's source file, found without executing any package. `search_path` is
    sys.path as a tuple, for callers that ask for many modules at once."""
    origin = source_file(name, tuple(sys.path) if search_path is None else search_path)
    return Path(origin) if origin is not None else None


@functools.lru_cache(maxsize=4096)
def source_file(name: str, search_path: tuple[str, ...]) -> str | None:
    """locate_module as a string, for callers that ask for many modules, many times."""
    spec = _find_spec(name, search_path)
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    return spec.origin


@functools.lru_cache(maxsize=4096)
def _find_spec(name: str, search_path: tuple[str, ...]) -> importlib.machinery.ModuleSpec | None:
    """A module's spec, found without executing any package; once per module and sys.path, each
    package's spec shared by its modules (fingerprinting asks for each module, and for names
    such as ``tasks.base.PipelineTask`` that an import may mean, many times)."""
    package, _, _ = name.rpartition(".")
    if not package:
        try:
            # A top-level lookup asks every finder on sys.meta_path (editable installs
            # add their own) without executing anything.
            return importlib.util.find_spec(name)
        except (ImportError, ValueError):
            return None
    parent = _find_spec(package, search_path)
    if parent is None or not parent.submodule_search_locations:
        return None
    return importlib.machinery.PathFinder.find_spec(name, list(parent.submodule_search_locations))


# What a module may declare as literals that tfpipe reads from its source without importing it.
LITERALS = ("KIND", "DEFAULTS", "LIMITS", "ONEDNN", "MIRROR_KEEPS_LABEL")


@functools.cache
def _module_literals(path: Path, mtime_ns: int, size: int) -> dict[str, Any]:
    """Top-level ``NAME = <literal>`` assignments of the LITERALS names in a module's source."""
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (OSError, SyntaxError, ValueError):
        return {}
    found: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        else:
            continue
        if isinstance(target, ast.Name) and target.id in LITERALS:
            try:
                found[target.id] = ast.literal_eval(value)
            except (ValueError, TypeError, SyntaxError, RecursionError):  # not a literal: unknown
                found.pop(target.id, None)
    return found


def _declared_kind(path: Path, mtime_ns: int, size: int) -> str | None:
    kind = _module_literals(path, mtime_ns, size).get("KIND")
    return kind if isinstance(kind, str) else None


_entry_points_cache: tuple[tuple[str, ...], importlib.metadata.EntryPoints] | None = None
_identities: dict[str, tuple[str, str]] = {}


def _installed_entry_points() -> importlib.metadata.EntryPoints:
    """Every installed entry point, read once for all plugin kinds (per sys.path)."""
    global _entry_points_cache
    key = tuple(sys.path)
    if _entry_points_cache is None or _entry_points_cache[0] != key:
        _entry_points_cache = (key, importlib.metadata.entry_points())
    return _entry_points_cache[1]


def _identity(dist: importlib.metadata.Distribution | None) -> tuple[str, str]:
    """(name, version) of a distribution. Its metadata (which holds the whole README) is parsed
    once per distribution, not once per entry point and field: that was ~0.1 s of a no-op rerun."""
    if dist is None:
        return "?", "?"
    location = getattr(dist, "_path", None)
    key = str(location) if location is not None else None
    if key is None or key not in _identities:
        identity = _name_and_version(dist)
        if key is None:
            return identity
        _identities[key] = identity
    return _identities[key]


def _name_and_version(dist: importlib.metadata.Distribution) -> tuple[str, str]:
    """Name and Version from the metadata's header lines; the email parser that
    ``dist.metadata`` runs would read the long description too."""
    fields: dict[str, str] = {}
    for line in (dist.read_text("METADATA") or dist.read_text("PKG-INFO") or "").splitlines():
        if not line.strip():
            break  # the header ends at the first blank line
        key, _, value = line.partition(":")
        if key in ("Name", "Version") and key not in fields:
            fields[key] = value.strip()
    if len(fields) < 2:  # an unusual layout: let importlib read it
        return dist.metadata["Name"], dist.version
    return fields["Name"], fields["Version"]


def distribution_version(name: str) -> str | None:
    """Installed version of the distribution `name`, or None (metadata header only)."""
    try:
        return _identity(importlib.metadata.distribution(name))[1]
    except importlib.metadata.PackageNotFoundError:
        return None


class PluginKind:
    """Finding, checking and loading the plugins of one entry-point group."""

    def __init__(self, kind: str, group: str, required: tuple[str, ...], noun: str, plural: str):
        self.kind, self.group, self.required, self.noun, self.plural = kind, group, required, noun, plural
        self._cache: tuple[tuple[str, ...], dict[str, list[PluginInfo]]] | None = None

    def _entries(self) -> dict[str, list[PluginInfo]]:
        # Installed entry points only change with sys.path.
        key = tuple(sys.path)
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, self._scan())
        return self._cache[1]

    def _scan(self) -> dict[str, list[PluginInfo]]:
        found: dict[str, list[PluginInfo]] = {}
        for entry in _installed_entry_points().select(group=self.group):
            distribution, version = _identity(getattr(entry, "dist", None))
            info = PluginInfo(kind=self.kind, name=entry.name, value=entry.value,
                              distribution=distribution, version=version)
            claims = found.setdefault(entry.name, [])
            # The same distribution can be seen twice on sys.path (editable + site): one claim.
            if all(other.distribution != info.distribution for other in claims):
                claims.append(info)
        return found

    def find(self) -> list[PluginInfo]:
        """All installed plugins of this kind, sorted by name (metadata only; one per name)."""
        entries = self._entries()
        return [entries[name][0] for name in sorted(entries)]

    def clashes(self) -> dict[str, list[PluginInfo]]:
        """Names registered by more than one distribution."""
        return {name: claims for name, claims in sorted(self._entries().items()) if len(claims) > 1}

    def names(self, kind: str | None = None) -> list[str]:
        return [info.name for info in self.find() if kind is None or info.declared_kind() == kind]

    def get(self, name: str, kind: str | None = None) -> PluginInfo:
        """The installed plugin `name` (of KIND `kind`, when given), or an error listing the
        installed ones of the right kind."""
        entries = self._entries()
        wanted = f" of kind {kind}" if kind else ""
        claims = entries.get(name)
        if not claims:
            raise UnknownPlugin(
                f"no {self.noun} named {name!r} is installed; installed {self.plural}{wanted}: "
                f"{', '.join(self.names(kind)) or 'none'}. Install the package that provides it, "
                f"or register it under the entry-point group {self.group!r}.")
        if len(claims) > 1:
            raise DuplicatePlugin(
                f"{self.noun} {name!r} is registered by more than one installed distribution: "
                + "; ".join(f"{info.distribution} {info.version} ({info.value})" for info in claims)
                + ". Uninstall one of them (pip uninstall ...) so the name means one thing.")
        info = claims[0]
        if kind is not None:
            declared = info.declared_kind()
            if declared != kind:
                what = f"a {declared} plugin" if declared else "a plugin without a literal KIND"
                raise WrongKind(
                    f"{self.noun} {name!r} is {what}; this path needs a {kind}: "
                    f"{', '.join(self.names(kind)) or 'none installed'}")
        return info

    def load(self, name: str, kind: str | None = None) -> Any:
        """Import one plugin and check it has what its kind requires."""
        info = self.get(name, kind)
        module_name, _, attribute = info.value.partition(":")
        try:
            obj = importlib.import_module(module_name.strip())
            for part in filter(None, attribute.strip().split(".")):
                obj = getattr(obj, part)
        except Exception as exc:  # any failure of third-party code must name the plugin
            raise FailedToLoadPlugin(
                f"failed to load {info.describe()}: {type(exc).__name__}: {exc}. Fix or uninstall "
                f"that distribution; other plugins are unaffected.") from exc
        missing = [attr for attr in self.required if not hasattr(obj, attr)]
        if missing:
            raise FailedToLoadPlugin(f"{info.describe()} lacks {', '.join(missing)}; a {self.noun} "
                                     f"needs {', '.join(self.required)}")
        return obj


MODELS = PluginKind("models", "tfpipe.models", ("KIND", "DEFAULTS", "build"), "model", "models")
DEVICES = PluginKind("devices", "tfpipe.devices", ("DEFAULTS", "environment", "configure", "strategy"),
                     "device policy", "device policies")
DATASETS = PluginKind("datasets", "tfpipe.datasets", ("KIND", "DEFAULTS", "open_dataset"), "dataset",
                      "datasets")
EXECUTORS = PluginKind("executors", "tfpipe.executors", ("KIND", "DEFAULTS", "check", "run"), "executor",
                       "executors")
KINDS = {plugin_kind.kind: plugin_kind for plugin_kind in (DATASETS, MODELS, DEVICES, EXECUTORS)}


def of(kind: str) -> PluginKind:
    try:
        return KINDS[kind]
    except KeyError:
        raise PluginError(f"unknown plugin kind {kind!r}; kinds are {', '.join(sorted(KINDS))}") from None


# Short forms kept for callers that name the kind as a string.
def find(kind: str) -> list[PluginInfo]:
    return of(kind).find()


def get(kind: str, name: str) -> PluginInfo:
    return of(kind).get(name)


def load(kind: str, name: str) -> Any:
    return of(kind).load(name)
