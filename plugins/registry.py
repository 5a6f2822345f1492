"""Find plugins from package metadata; load one on demand.

Finding reads entry points only (``importlib.metadata``) and never imports a
plugin, so listing plugins or fingerprinting tasks never imports TensorFlow.
Loading imports exactly one plugin; any failure is wrapped in
:class:`FailedToLoadPlugin` naming the plugin and its distribution, and one
broken plugin never hides the others.
"""
from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from typing import Any

GROUPS = {"models": "tfpipe.models", "devices": "tfpipe.devices"}
# Attributes every plugin of a kind must have, checked on load.
REQUIRED_ATTRIBUTES = {"models": ("KIND", "DEFAULTS", "build"), "devices": ("DEFAULTS", "environment", "configure", "strategy")}


class PluginError(Exception):
    """A plugin could not be found or loaded; the message says which and why."""


class UnknownPlugin(PluginError):
    pass


class FailedToLoadPlugin(PluginError):
    pass


@dataclass(frozen=True)
class PluginInfo:
    kind: str
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


def _group(kind: str) -> str:
    try:
        return GROUPS[kind]
    except KeyError:
        raise PluginError(f"unknown plugin kind {kind!r}; kinds are {', '.join(sorted(GROUPS))}") from None


def find(kind: str) -> list[PluginInfo]:
    """All installed plugins of a kind, sorted by name (metadata only)."""
    group = _group(kind)
    found: dict[str, PluginInfo] = {}
    for entry in importlib.metadata.entry_points(group=group):
        dist = getattr(entry, "dist", None)
        info = PluginInfo(
            kind=kind,
            name=entry.name,
            value=entry.value,
            distribution=dist.metadata["Name"] if dist is not None else "?",
            version=dist.version if dist is not None else "?",
        )
        # The same distribution can be seen twice on sys.path (editable + site);
        # keep the first, as importlib would.
        found.setdefault(entry.name, info)
    return [found[name] for name in sorted(found)]


def get(kind: str, name: str) -> PluginInfo:
    """The installed plugin `name`, or an error listing the installed ones."""
    plugins = find(kind)
    for info in plugins:
        if info.name == name:
            return info
    installed = ", ".join(info.name for info in plugins) or "none"
    raise UnknownPlugin(
        f"no {kind} plugin named {name!r} is installed (installed: {installed}). "
        f"Install the package that provides it, or register it under the entry-point "
        f"group {_group(kind)!r}."
    )


def load(kind: str, name: str) -> Any:
    """Import one plugin and check it has what its kind requires."""
    info = get(kind, name)
    where = f"{kind} plugin {name!r} ({info.value}) from distribution {info.distribution} {info.version}"
    module_name, _, attribute = info.value.partition(":")
    try:
        obj = importlib.import_module(module_name.strip())
        for part in filter(None, attribute.strip().split(".")):
            obj = getattr(obj, part)
    except Exception as exc:  # any failure of third-party code must name the plugin
        raise FailedToLoadPlugin(
            f"failed to load {where}: {type(exc).__name__}: {exc}. Fix or uninstall that "
            f"distribution; other plugins are unaffected."
        ) from exc
    missing = [attr for attr in REQUIRED_ATTRIBUTES[kind] if not hasattr(obj, attr)]
    if missing:
        raise FailedToLoadPlugin(f"{where} lacks {', '.join(missing)}; a {kind} plugin needs "
                                 f"{', '.join(REQUIRED_ATTRIBUTES[kind])}")
    return obj
