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

import yaml

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

def _load_nodes(path: Path) -> yaml.Node | None:
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ConfigError(f"{where}: invalid YAML: {exc.problem or exc}; fix the syntax") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from exc


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _check_duplicates(node: yaml.Node, path: Path, label: str = "") -> None:
    """A key given twice in one mapping is an error: YAML loaders silently keep the last one."""
    if isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _check_duplicates(item, path, label)
    if not isinstance(node, yaml.MappingNode):
        return
    first: dict[Any, int] = {}
    for key_node, value_node in node.value:
        key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
        name = f"{label}.{key}" if label else str(key)
        if key is not None and key in first:
            what = f"section {key!r}" if not label else f"key {name}"
            raise ConfigError(f"{path}:{_line(key_node)}: duplicate {what} (first at {path}:"
                              f"{first[key]}); keep one of them")
        if key is not None:
            first[key] = _line(key_node)
        _check_duplicates(value_node, path, name)


def load_file(path: Path | str) -> Config:
    """Parse and validate one YAML file (sections, keys, types, ranges), keeping line numbers."""
    path = Path(path)
    root = _load_nodes(path)
    if root is None:
        return Config({})
    if not isinstance(root, yaml.MappingNode):
        raise ConfigError(f"{path}:{_line(root)}: the config must be a mapping of sections "
                          f"({', '.join(settings.SECTIONS)})")
    _check_duplicates(root, path)
    constructor = yaml.SafeLoader("")
    config = Config({})
    for key_node, section_node in root.value:
        section, where = key_node.value, f"{path}:{_line(key_node)}"
        if section not in settings.SECTIONS:
            raise ConfigError(f"{where}: unknown section {section!r}; known sections: "
                              f"{', '.join(settings.SECTIONS)}")
        if section_node.tag == "tag:yaml.org,2002:null":
            continue
        if not isinstance(section_node, yaml.MappingNode):
            raise ConfigError(f"{where}: section {section!r} must be a mapping of keys")
        target = config.values.setdefault(section, {})
        for item_key, item_node in section_node.value:
            key, where = item_key.value, f"{path}:{_line(item_key)}"
            value = _construct(constructor, item_node, path)
            if section in settings.FREE_FORM:
                target[key] = _free_form_entry(section, key, value, item_node, path, config)
            else:
                declared = settings.SETTINGS.get(f"{section}.{key}")
                if declared is None:
                    known = ", ".join(s.key for s in settings.of_section(section))
                    raise ConfigError(f"{where}: unknown key {section}.{key}; known keys in "
                                      f"{section}: {known}")
                target[key] = declared.check(value, where)
            config.origins[f"{section}.{key}"] = Origin(where)
    return config


def _construct(constructor: yaml.SafeLoader, node: yaml.Node, path: Path) -> Any:
    """The value of `node`; a tag the safe loader does not know (``!!python/object``, ``!foo``)
    or a value its tag cannot hold (``!!int abc``) is an error naming the file and line."""
    try:
        return constructor.construct_object(node, deep=True)
    except (yaml.YAMLError, ValueError, TypeError) as exc:
        mark = getattr(exc, "problem_mark", None) or node.start_mark
        tag = _bad_tag(node)
        problem = (f"unsupported YAML tag {tag}; a tfpipe config holds plain numbers, strings, "
                   "lists and mappings: remove the tag" if tag else
                   f"invalid value: {getattr(exc, 'problem', None) or exc}")
        raise ConfigError(f"{path}:{mark.line + 1}: {problem}") from None


_STANDARD_TAG = "tag:yaml.org,2002:"


def _bad_tag(node: yaml.Node) -> str | None:
    """The first tag in `node` the safe loader cannot construct, as written ("!!python/tuple")."""
    if node.tag not in yaml.SafeLoader.yaml_constructors:
        return "!!" + node.tag.removeprefix(_STANDARD_TAG) if node.tag.startswith(_STANDARD_TAG) else node.tag
    children = node.value if isinstance(node, yaml.SequenceNode) else (
        [item for pair in node.value for item in pair] if isinstance(node, yaml.MappingNode) else [])
    return next((tag for tag in map(_bad_tag, children) if tag), None)


def _free_form_entry(section: str, name: str, value: Any, node: yaml.Node, path: Path,
                     config: Config) -> dict[str, Any]:
    where = f"{path}:{_line(node)}"
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: {section}.{name} must be a mapping of options (one "
                          f"'key: value' per line under it), got {value!r}")
    for key_node, _ in node.value:  # each option remembers its own line
        key, where = key_node.value, f"{path}:{_line(key_node)}"
        settings.check_finite(value[key], f"{section}.{name}.{key}", where)
        config.origins[f"{section}.{name}.{key}"] = Origin(where)
    return value


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


def resolve(user_file: str | None) -> Config:
    """Defaults with the user's file on top."""
    config = defaults()
    if user_file:
        config = merge(config, load_file(Path(user_file)))
    return config


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
