"""Load, validate and merge YAML configuration (the only place tfpipe reads YAML).

Layers, later wins: ``pipelines/configs/defaults.yaml``, the user's
``--config FILE``, then command-line parameters. Every value is checked
against SCHEMA; errors name the file and line.
"""
from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from plugins.errors import TfpipeError

DEFAULTS_FILE = Path(__file__).parent / "configs" / "defaults.yaml"


class ConfigError(TfpipeError):
    pass


# section -> key -> (type, must be positive). A type of dict means free-form mapping.
SCHEMA: dict[str, dict[str, tuple[type | tuple[type, ...], bool]]] = {
    "data": {"mirror": ((str, type(None)), False)},
    "image": {
        "dataset": (str, False),
        "dataset_options": (dict, False),  # the dataset plugin's options, e.g. {path: ...}
        "model": (str, False),
        "validation_fraction": (float, True),
        "split_seed": (int, False),
        "steps": (int, True),
        "batch_size": (int, True),
        "learning_rate": (float, True),
        "lr_schedule": (str, False),
        "checkpoint_every": (int, True),
        "seed": (int, False),
        "deterministic": (bool, False),
    },
    "text": {
        "corpus": (str, False),
        "model": (str, False),
        "lowercase": (bool, False),
        "holdout": (float, True),
        "window": (int, True),
        "steps": (int, True),
        "batch_size": (int, True),
        "learning_rate": (float, True),
        "checkpoint_every": (int, True),
        "seed": (int, False),
        "deterministic": (bool, False),
        "temperatures": ((list, tuple), False),  # each > 0: checked by the text run
        "length": (int, True),
        "sample_seed": (int, False),
        "seed_length": (int, True),
    },
    # Device policy of training: a name or list of tfpipe.devices names, and their shared options.
    "device": {"policy": ((str, list), False), "options": ((dict, type(None)), False)},
    "models": {},  # model name -> {hyper-parameter: value}; checked by the plugin's DEFAULTS
}
# Keys whose value must be one of a few words.
CHOICES = {"image.lr_schedule": ("constant", "cosine")}
_TYPE_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string",
               dict: "a mapping", list: "a list", tuple: "a list"}


@dataclass
class Config:
    values: dict[str, dict[str, Any]]
    # "section.key" -> "file:line" of the layer that set it, for error messages.
    origins: dict[str, str] = field(default_factory=dict)

    def get(self, section: str, key: str) -> Any:
        return self.values.get(section, {}).get(key)

    def model_params(self, model: str) -> dict[str, Any]:
        return dict(self.values.get("models", {}).get(model) or {})


def _type_ok(value: Any, expected: type | tuple[type, ...]) -> bool:
    expected = expected if isinstance(expected, tuple) else (expected,)
    if isinstance(value, bool):
        return bool in expected
    if isinstance(value, int) and float in expected:
        return True
    return isinstance(value, expected)


def _describe(expected: type | tuple[type, ...]) -> str:
    expected = expected if isinstance(expected, tuple) else (expected,)
    return " or ".join("null" if t is type(None) else _TYPE_NAMES.get(t, t.__name__) for t in expected)


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


def load_file(path: Path) -> Config:
    """Parse and validate one YAML file (keys, types, ranges), keeping line numbers."""
    path = Path(path)
    root = _load_nodes(path)
    if root is None:
        return Config({})
    if not isinstance(root, yaml.MappingNode):
        raise ConfigError(f"{path}:{root.start_mark.line + 1}: the config must be a mapping of "
                          f"sections ({', '.join(SCHEMA)})")
    constructor = yaml.SafeLoader("")
    values: dict[str, dict[str, Any]] = {}
    origins: dict[str, str] = {}
    for key_node, section_node in root.value:
        section, line = key_node.value, key_node.start_mark.line + 1
        if section not in SCHEMA:
            raise ConfigError(f"{path}:{line}: unknown section {section!r}; known sections: "
                              f"{', '.join(SCHEMA)}")
        if section_node.tag == "tag:yaml.org,2002:null":
            continue
        if not isinstance(section_node, yaml.MappingNode):
            raise ConfigError(f"{path}:{line}: section {section!r} must be a mapping of keys")
        values[section] = {}
        for item_key, item_node in section_node.value:
            key, line = item_key.value, item_key.start_mark.line + 1
            value = constructor.construct_object(item_node, deep=True)
            where = f"{path}:{line}"
            if section == "models":
                if value is not None and not isinstance(value, dict):
                    raise ConfigError(f"{where}: models.{key} must be a mapping of hyper-parameters")
                values[section][key] = value or {}
            else:
                _check(section, key, value, where)
                values[section][key] = value
            origins[f"{section}.{key}"] = where
    return Config(values, origins)


def _check(section: str, key: str, value: Any, where: str) -> None:
    known = SCHEMA[section]
    if key not in known:
        raise ConfigError(f"{where}: unknown key {section}.{key}; known keys in {section}: "
                          f"{', '.join(known)}")
    expected, positive = known[key]
    if not _type_ok(value, expected):
        raise ConfigError(f"{where}: {section}.{key} must be {_describe(expected)}, got {value!r}")
    if positive and value <= 0:
        raise ConfigError(f"{where}: {section}.{key} must be greater than 0, got {value!r}")
    choices = CHOICES.get(f"{section}.{key}")
    if choices and value not in choices:
        raise ConfigError(f"{where}: {section}.{key} must be one of {', '.join(choices)}, got {value!r}")


def merge(base: Config, override: Config) -> Config:
    values = copy.deepcopy(base.values)
    for section, items in override.values.items():
        target = values.setdefault(section, {})
        for key, value in items.items():
            if section == "models":
                target[key] = {**(target.get(key) or {}), **value}
            else:
                target[key] = value
    return Config(values, {**base.origins, **override.origins})


def apply_overrides(config: Config, section: str, overrides: dict[str, Any]) -> Config:
    """Command-line values (None = not given) on top of the files."""
    layer = Config({section: {}})
    for key, value in overrides.items():
        if value is None:
            continue
        _check(section, key, value, f"command line --{key.replace('_', '-')}")
        layer.values[section][key] = value
        layer.origins[f"{section}.{key}"] = "command line"
    return merge(config, layer)


def resolve(user_file: str | None) -> Config:
    config = load_file(DEFAULTS_FILE)
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
    return names, {**base, **dict(options or {})}


def data_mirror(config: Config) -> str | None:
    """The mirror root: config data.mirror, else $TFPIPE_DATA_MIRROR."""
    return config.get("data", "mirror") or os.environ.get("TFPIPE_DATA_MIRROR") or None


def workspace_root() -> str:
    return os.environ.get("TFPIPE_WORKSPACE") or "workspace"
