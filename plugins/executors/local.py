"""`local`: the stage's process is a child of the Luigi worker on this machine (the default).

An executor plugin declares KIND = "executor", DEFAULTS (its options; unknown ones are refused
with the config's file:line), ``check(options, where)`` (run in the Luigi process while
scheduling: wrong types, missing commands; raises TfpipeError) and ``run(task, command,
folder, env, options)`` (runs ``command``, relays its events with tasks.protocol.Relay and
returns the stage's result).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from tasks.protocol import run_local

KIND = "executor"
DEFAULTS: dict[str, Any] = {}


def check(options: dict[str, Any], where: Callable[[str], str]) -> None:
    return None  # nothing to configure


def run(task: Any, command: list[str], folder: Path, env: dict[str, str], options: dict[str, Any]) -> dict[str, Any]:
    return run_local(task, command, env)
