"""Plugin choices checked in the Luigi process before anything runs (metadata and source only).

A model or dataset of the wrong KIND, an unknown one, or an option its plugin
does not declare in DEFAULTS fails here, in well under a second, with the file:line
or flag that chose it. Nothing is imported: KIND and DEFAULTS are read from source.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pipelines.config import Config, ConfigError
from pipelines.settings import Setting
from plugins import registry
from plugins.datasets.api import TEXT
from plugins.datasets.text import is_url

logger = logging.getLogger(__name__)

# The dataset plugin that reads a text file or URL the user names (option `path`).
TEXT_FILE = "text_file"


def check_model(name: str, kind: str, where: str) -> registry.PluginInfo:
    try:
        return registry.MODELS.get(name, kind)
    except registry.PluginError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def check_dataset(name: str, kind: str, where: str) -> registry.PluginInfo:
    try:
        return registry.DATASETS.get(name, kind)
    except registry.PluginError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def looks_like_path(value: str) -> bool:
    return "/" in value or value.startswith(("~", ".")) or bool(Path(value).suffix) or Path(value).is_file()


def resolve_corpus(value: str, mirror: str | None,
                   where: str) -> tuple[str, str | None, registry.PluginInfo | None]:
    """(dataset plugin, its `path` option or None, plugin info): a value that is not an installed
    plugin but looks like a file path or an http(s) URL is read by the text_file plugin."""
    if value not in registry.DATASETS.names() and (is_url(value) or looks_like_path(value)):
        info = check_dataset(TEXT_FILE, TEXT, where)
        path = value if is_url(value) else str(Path(value).expanduser().absolute())
        return TEXT_FILE, path, info
    return value, None, check_dataset(value, TEXT, where)


def check_options(info: registry.PluginInfo | None, options: dict[str, Any], entry: str,
                  config: Config, noun: str) -> None:
    """Every key of `options` (config entry `entry`, e.g. ``models.mlp``) must be one the plugin
    declares in its DEFAULTS. Skipped when DEFAULTS cannot be read without importing."""
    declared = info.declared_defaults() if info is not None else None
    if declared is None:
        return
    for key in sorted(set(options) - set(declared)):
        path = f"{entry}.{key}"
        raise ConfigError(
            f"{config.where(path)}: unknown {noun} {key!r} for {registry.of(info.kind).noun} "
            f"plugin {info.name!r} "
            f"({path}); it takes: {', '.join(sorted(declared)) or 'none'} (its DEFAULTS)")
    for key, limit in sorted(info.declared_limits().items()):
        if key in options and key in declared:
            _limited(entry, key, declared[key], limit).check(options[key], config.where(f"{entry}.{key}"))


_LIMIT_KEYS = ("minimum", "maximum", "open_min", "open_max")


def _limited(entry: str, key: str, default: Any, limit: dict[str, Any]) -> Setting:
    """A plugin option declared in its LIMITS, checked like a setting: a number of the type of
    its default (an int default asks for a whole number), in range and finite."""
    kind = int if isinstance(default, int) and not isinstance(default, bool) else float
    return Setting(entry, key, (kind,), default, help="", declared_at=entry, param=key,
                   **{name: limit[name] for name in _LIMIT_KEYS if name in limit})


def stage_executors(config: Config) -> dict[str, str]:
    """``executor.stages`` (stage -> executor name), its stages and names checked as text."""
    from tasks.protocol import PROCESS_STAGES

    where = config.where("executor.stages")
    chosen = config.get("executor", "stages") or {}
    for stage, name in chosen.items():
        if stage not in PROCESS_STAGES:
            raise ConfigError(f"{where}: unknown stage {stage!r} in executor.stages; stages are "
                              f"{', '.join(PROCESS_STAGES)}")
        if not isinstance(name, str):
            raise ConfigError(f"{where}: executor.stages.{stage} must be an executor name, got {name!r}")
    return chosen


def check_executor(name: str, options: dict[str, Any], config: Config, chosen_by: str = "executor.name") -> None:
    """The executor (chosen by ``executor.name``, or `chosen_by`) is installed and takes `options`
    (``executors.<name>``): unknown options with file:line here, their types and the executor's
    own needs (sbatch on PATH) by its ``check``."""
    chosen = config.where(chosen_by)
    if name == "local" and not options and "local" not in registry.EXECUTORS.names():
        return  # an install older than the tfpipe.executors group: the default still runs (tasks/protocol.py)
    try:
        info = registry.EXECUTORS.get(name)
    except registry.PluginError as exc:
        raise ConfigError(f"{chosen}: {exc}") from exc
    entry = f"executors.{name}"
    check_options(info, options, entry, config, "option")
    try:
        plugin = registry.EXECUTORS.load(name)
    except registry.PluginError as exc:
        raise ConfigError(f"{chosen}: {exc}") from exc
    plugin.check(options, lambda key: chosen if key is None else config.where(f"{entry}.{key}"))


def check_cluster_devices(name: str, options: dict[str, Any], device: list[str], device_options: dict[str, Any],
                          config: Config, device_where: str) -> None:
    """Where the train stage's executor hands out GPUs and workers itself (slurm: it has
    ``allocate_devices``), the device policy must fit its options (a GPU count that disagrees with
    ``gpus``, GPU ids, multi_worker without nodes or ntasks): refused here with file:line, before
    anything runs. `options`: the run's executor options, with ``stages``."""
    from types import SimpleNamespace

    from plugins.errors import TfpipeError
    from tasks.devices import cluster_needs
    from tasks.protocol import executor_name, executor_of

    executor, merged = executor_of(SimpleNamespace(executor=name, executor_options=options, stage="train"))
    if not hasattr(executor, "allocate_devices"):
        return
    plugin = executor_name(executor)
    try:
        needs = cluster_needs(device, device_options, plugin)
    except TfpipeError as exc:
        raise ConfigError(f"{device_where}: {exc}") from exc

    train = (options.get("stages") or {}).get("train") or {}

    def where(key: str) -> str:
        """file:line (or flag) of an executor option; of the device policy where the option is unset."""
        if key not in train and key not in options:
            return device_where
        path = f"executors.{plugin}.stages.train.{key}" if key in train else f"executors.{plugin}.{key}"
        while "." in path:  # --executor-options records where its top-level keys came from
            if path in config.origins:
                return config.where(path)
            path = path.rsplit(".", 1)[0]
        return device_where

    try:
        executor.allocate_devices(merged, needs, where)
    except TfpipeError as exc:
        raise ConfigError(str(exc)) from exc
