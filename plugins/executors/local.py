"""`local`: the stage's process runs on this machine, a child of the Luigi worker (the default).

Options: ``reuse_process`` (default true): the stages a Luigi worker runs one after another share
one process (tasks.stage_server), so TensorFlow starts once per run instead of once per stage;
false starts a fresh process for every stage.

An executor plugin declares KIND = "executor", DEFAULTS (its options; unknown ones are refused
with the config's file:line), ``check(options, where)`` (run in the Luigi process while
scheduling: wrong types, missing commands; raises TfpipeError) and ``run(task, command,
folder, env, options)`` (runs ``command``, relays its events with tasks.protocol.Relay and
returns the stage's result).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from plugins.errors import TfpipeError
from tasks import stage_server
from tasks.protocol import run_local

KIND = "executor"
DEFAULTS: dict[str, Any] = {"reuse_process": True}


def check(options: dict[str, Any], where: Callable[[str | None], str]) -> None:
    if not isinstance(options.get("reuse_process", True), bool):
        raise TfpipeError(f"{where('reuse_process')}: executors.local.reuse_process must be true or false, "
                          f"got {options.get('reuse_process')!r}")


def run(task: Any, command: list[str], folder: Path, env: dict[str, str], options: dict[str, Any]) -> dict[str, Any]:
    if not options.get("reuse_process", True):
        return run_local(task, command, env)
    # The device policy is applied when TensorFlow starts: only stages asking for the same share a process.
    device = json.loads(Path(command[3]).read_text("utf-8")).get("device") or {}
    return stage_server.run(task, command, env, device if device.get("effective") else None)
