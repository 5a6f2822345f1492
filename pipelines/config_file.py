"""Reading one YAML config file: sections, keys, types and ranges checked, each value's file:line kept.

Apart from pipelines.config so that PyYAML (~25 ms to import) loads only when a
file is parsed: a rerun finds the parsed file in pipelines.config's cache.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from pipelines import settings
from pipelines.config import Config, Origin
from pipelines.settings import ConfigError


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
    _remember_lines(node, f"{section}.{name}", value, path, config)
    return value


def _remember_lines(node: yaml.MappingNode, label: str, value: dict[str, Any], path: Path, config: Config) -> None:
    """Each option remembers its own line, options nested in mappings too (executors.slurm.stages.train.gpus)."""
    for key_node, value_node in node.value:
        key, where = key_node.value, f"{path}:{_line(key_node)}"
        settings.check_finite(value[key], f"{label}.{key}", where)
        config.origins[f"{label}.{key}"] = Origin(where)
        if isinstance(value_node, yaml.MappingNode) and isinstance(value[key], dict):
            _remember_lines(value_node, f"{label}.{key}", value[key], path, config)
