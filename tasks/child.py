"""Parent side of a TensorFlow stage: start the worker subprocess and relay what it says.

The Luigi process never imports TensorFlow. Each TensorFlow stage runs in a
fresh ``python -m`` subprocess, which dies with its parent (PR_SET_PDEATHSIG),
so killing a run never leaves an orphan writing into an output folder.
"""
from __future__ import annotations

import ctypes
import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import luigi

from tasks import atomic
from tasks.errors import TfpipeError
from tasks.worker import EVENT_PREFIX

logger = logging.getLogger(__name__)
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass  # not Linux: the child may outlive a killed parent


def child_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep C++ start-up chatter out of the log
    env["PYTHONUNBUFFERED"] = "1"
    # The child must import this very checkout's packages, wherever the cwd is.
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    env.update(extra or {})
    return env


def _describe_progress(event: dict[str, Any]) -> str:
    parts = [f"{event['label']}: step {event['step']}/{event['total']} ({event['percent']:.0f}%)"]
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "val_bits_per_char"):
        if event.get(key) is not None:
            parts.append(f"{key} {event[key]:.4f}")
    for unit in ("samples", "chars"):
        if event.get(f"{unit}_per_s"):
            parts.append(f"{event[f'{unit}_per_s']:.0f} {unit}/s")
    if event.get("eta_s") is not None:
        parts.append(f"ETA {event['eta_s']:.0f}s")
    return ", ".join(parts)


def run_worker(task: luigi.Task, module: str, request: dict[str, Any], folder: Path,
               env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run `python -m module request.json` for `task`; return the worker's result."""
    request_path = folder / "request.json"
    atomic.write_json(request_path, request)
    command = [sys.executable, "-m", module, str(request_path)]
    logger.info("starting %s for %s", module, task.task_id)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=None, text=True,
                               env=child_environment(env), preexec_fn=_die_with_parent)
    result, error = None, None
    assert process.stdout is not None
    for line in process.stdout:
        if not line.startswith(EVENT_PREFIX):
            sys.stderr.write(line)
            continue
        event = json.loads(line[len(EVENT_PREFIX):])
        kind = event.pop("event")
        if kind == "progress":
            message = _describe_progress(event)
            logger.info(message)
            task.set_progress_percentage(event["percent"])
            task.set_status_message(message)
        elif kind == "log":
            logger.info("%s", event["message"])
        elif kind == "result":
            result = event["result"]
        elif kind == "error":
            error = event["message"]
    code = process.wait()
    if code != 0 or result is None:
        if code < 0:
            error = error or f"killed by signal {-code}"
        raise TfpipeError(error or f"{module} exited with code {code} without a result; see its output above")
    return result
