"""Load, validate and merge configuration layers (the only place tfpipe reads YAML).

Layers, later wins: the defaults declared in pipelines/settings.py, the user's
``--config FILE``, then command-line parameters. Every value is checked against
its declaration; errors name the file and line (or the command-line flag).
Every value remembers where it was set, for error messages and ``explain``.
"""
from __future__ import annotations

import copy
import os
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines import settings
from pipelines.settings import ConfigError

__all__ = ["Config", "ConfigError", "Origin", "apply_command_line", "apply_entry", "data_mirror",
           "defaults", "device_policy", "load_file", "merge", "render_defaults", "resolve",
           "workspace_root"]


@dataclass(frozen=True)
class Origin:
    """Where a value was set: "my.yaml:3", "command line --steps" or a declaration's file:line."""

    where: str
    default: bool = False

    def describe(self, path: str) -> str:
        """'image.learning_rate (default) at pipelines/settings.py:42', 'text.steps at a.yaml:3'."""
        return f"{path}{' (default)' if self.default else ''} at {self.where}"

    def __str__(self) -> str:
        return self.where


@dataclass
class Config:
    values: dict[str, dict[str, Any]]
    # "section.key" (free-form: "models.cnn" and "models.cnn.dropout") -> where it was set.
    origins: dict[str, Origin] = field(default_factory=dict)

    def get(self, section: str, key: str) -> Any:
        return self.values.get(section, {}).get(key)

    def entry(self, section: str, name: str) -> dict[str, Any]:
        """A free-form entry (``models.<name>``, ``datasets.<name>``); {} when not set."""
        return copy.deepcopy(dict(self.values.get(section, {}).get(name) or {}))

    def model_params(self, model: str) -> dict[str, Any]:
        return self.entry("models", model)

    def origin(self, path: str) -> Origin | None:
        return self.origins.get(path)

    def where(self, path: str) -> str:
        """file:line or flag of `path`, for error messages (the path itself if unknown)."""
        origin = self.origins.get(path)
        return origin.where if origin else path

    def set_by(self, path: str) -> str | None:
        origin = self.origins.get(path)
        return origin.describe(path) if origin else None


def defaults() -> Config:
    """The defaults layer, built from the declarations in pipelines/settings.py."""
    values = settings.default_values()
    origins = {path: Origin(declared.declared_at, default=True)
               for path, declared in settings.SETTINGS.items()}
    for declared in settings.FREE_FORM.values():
        for name, entry in declared.default.items():
            origin = Origin(declared.declared_at, default=True)
            origins[f"{declared.section}.{name}"] = origin
            for key in entry:
                origins[f"{declared.section}.{name}.{key}"] = origin
    return Config(values, origins)


# ----- files --------------------------------------------------------------------------------

def load_file(path: Path | str) -> Config:
    """Parse and validate one YAML file (sections, keys, types, ranges), keeping line numbers."""
    from pipelines import config_file  # imports PyYAML

    return config_file.load_file(path)


_CACHE_ENTRIES = 64


def _validation_stamp() -> str:
    """Size and mtime of the modules that validate a config file."""
    stamps = []
    for module in ("settings.py", "config_file.py"):
        stat = (Path(__file__).parent / module).stat()
        stamps.append(f"{stat.st_size}:{stat.st_mtime_ns}")
    return ",".join(stamps)


def _cached_load(path: Path, key: str) -> Config:
    """load_file, remembered in the workspace's .cache/configs.json by the file's path, size,
    mtime, inode and ctime: a rerun with an unchanged file neither imports PyYAML nor parses."""
    import json

    cache_file = Path(workspace_root()) / ".cache" / "configs.json"
    key = f"{key}|{_validation_stamp()}"  # a tfpipe with other checks validates the file again
    try:
        cache = json.loads(cache_file.read_text("utf-8"))
    except (OSError, ValueError):
        cache = None
    cache = cache if isinstance(cache, dict) else {}
    if key in cache:
        try:
            entry = cache[key]
            return Config(entry["values"], {name: Origin(where, default) for name, (where, default)
                                            in entry["origins"].items()})
        except (KeyError, TypeError, ValueError):
            pass  # a damaged entry: parse again
    config = load_file(path)
    entry = {"values": config.values,
             "origins": {name: [origin.where, origin.default] for name, origin in config.origins.items()}}
    try:
        if json.loads(json.dumps(entry)) != entry:
            return config  # a value JSON cannot hold as it is (a date, an integer key): not cached
    except (TypeError, ValueError):
        return config
    for stale in list(cache)[: max(0, len(cache) - _CACHE_ENTRIES + 1)]:
        del cache[stale]
    cache[key] = entry
    try:
        from tasks import atomic

        atomic.write_text(cache_file, json.dumps(cache))
    except OSError:
        pass  # a read-only workspace only costs parsing again next time
    return config


# ----- layers -------------------------------------------------------------------------------

def merge(base: Config, override: Config) -> Config:
    """`override` on top of `base`; free-form entries are merged option by option."""
    values = copy.deepcopy(base.values)
    for section, items in override.values.items():
        target = values.setdefault(section, {})
        for key, value in items.items():
            if section in settings.FREE_FORM:
                target[key] = {**(target.get(key) or {}), **copy.deepcopy(value)}
            else:
                target[key] = copy.deepcopy(value)
    return Config(values, {**base.origins, **override.origins})


def apply_command_line(config: Config, given: dict[str, Any]) -> Config:
    """Command-line values on top: `given` maps setting paths to values (None: not given)."""
    layer = Config({})
    for path, value in given.items():
        if value is None:
            continue
        declared = settings.get(path)
        where = f"command line {declared.flag}"
        layer.values.setdefault(declared.section, {})[declared.key] = declared.check(value, where)
        layer.origins[path] = Origin(where)
    return merge(config, layer)


def apply_entry(config: Config, section: str, name: str, options: Any, flag: str) -> Config:
    """Command-line options of one free-form entry (--model-params ...) over ``section.name``."""
    if options is None:
        return config
    where = f"command line {flag}"
    plain = settings.plain(options)
    if not isinstance(plain, dict):
        raise ConfigError(f"{where}: give a JSON mapping, e.g. '{{\"key\": 1}}', got {options!r}")
    settings.check_finite(plain, f"{section}.{name}", where)
    layer = Config({section: {name: plain}},
                   {f"{section}.{name}.{key}": Origin(where) for key in plain})
    return merge(config, layer)


_resolved: dict[str, Config] = {}


def resolve(user_file: str | None) -> Config:
    """Defaults with the user's file on top. Parsed once per process and file version: the image
    and text runs of one FullRun read the same file."""
    key = ""
    if user_file:
        try:
            stat = os.stat(user_file)
            key = f"{os.path.realpath(user_file)}|{stat.st_size}|{stat.st_mtime_ns}|{stat.st_ino}|{stat.st_ctime_ns}"
        except OSError:
            return merge(defaults(), load_file(user_file))  # unreadable: load_file says why
    if key not in _resolved:
        _resolved[key] = merge(defaults(), _cached_load(Path(user_file), key)) if user_file else defaults()
    return copy.deepcopy(_resolved[key])


def device_policy(config: Config, policy: str | None = None,
                  options: dict[str, Any] | None = None) -> tuple[list[str], dict[str, Any]]:
    """(policy names, options) of training: the config's ``device`` section, with the command line
    on top. A policy named on the command line drops the config's options (they belong to the
    config's policy); --device-options are merged over whichever options remain."""
    from tasks.devices import normalise

    section = config.values.get("device", {})
    names = normalise(section.get("policy"))
    base = dict(section.get("options") or {})
    if policy is not None:
        names, base = normalise(policy), {}
    return names, {**base, **settings.plain(dict(options or {}))}


def data_mirror(config: Config) -> str | None:
    """The mirror root: config data.mirror, else $TFPIPE_DATA_MIRROR."""
    return config.get("data", "mirror") or os.environ.get("TFPIPE_DATA_MIRROR") or None


def workspace_root() -> str:
    return os.environ.get("TFPIPE_WORKSPACE") or "workspace"


# ----- `tfpipe defaults` --------------------------------------------------------------------

def _inline(value: Any) -> str:
    """A value as one line of YAML (flow style)."""
    import yaml  # only for `tfpipe defaults`: a run need not import it

    text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    return text.removesuffix("...").strip()


def render_defaults() -> str:
    """Every setting with its default as commented YAML: a valid config file."""
    lines = ["# tfpipe settings with their defaults (generated from pipelines/settings.py).",
             "# Copy what you change into your own file and pass it with --config FILE;",
             "# unknown keys, wrong types and out-of-range values are errors with file:line.",
             "# Each setting is also a run-task parameter (shown after 'command line')."]
    for section, help_text in settings.SECTIONS.items():
        lines += ["", *textwrap.wrap(help_text, 98, initial_indent="# ", subsequent_indent="# "),
                  f"{section}:"]
        if section in settings.FREE_FORM:
            entries = settings.FREE_FORM[section].default
            if not entries:
                lines[-1] += " {}"
            for name, entry in entries.items():
                lines.append(f"  {name}:" + ("" if entry else " {}"))
                lines += [f"    {key}: {_inline(value)}" for key, value in entry.items()]
            continue
        for declared in settings.of_section(section):
            comment = f"{declared.help} ({declared.describe()}; command line {declared.flag})"
            lines += textwrap.wrap(comment, 96, initial_indent="  # ", subsequent_indent="  #   ")
            lines.append(f"  {declared.key}: {_inline(declared.default)}")
    return "\n".join(lines) + "\n"
