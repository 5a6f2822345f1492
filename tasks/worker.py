"""Child side of a TensorFlow stage: read the request, report progress, return a result.

A worker module is run as ``python -m tasks.<stage>_tf REQUEST.json``. It talks
to the Luigi process through stdout lines starting with EVENT_PREFIX; anything
else it prints is passed through as log text. This module imports no
TensorFlow, so the parent can use the protocol too.
"""
from __future__ import annotations

import json
import sys
import time
import traceback
from typing import Any, Callable

EVENT_PREFIX = "@@tfpipe "
EXIT_USER_ERROR = 2
EXIT_CRASH = 3


def emit(event: str, **payload: Any) -> None:
    sys.stdout.write(EVENT_PREFIX + json.dumps({"event": event, **payload}, default=str) + "\n")
    sys.stdout.flush()


class Progress:
    """Reports step progress at most every `interval_s` seconds (and at the end)."""

    def __init__(self, total: int, label: str, interval_s: float = 2.0, start: int = 0):
        self.total, self.label, self.interval_s = max(total, 1), label, interval_s
        self.start_step, self.started = start, time.perf_counter()
        self.last = 0.0

    def update(self, step: int, force: bool = False, **metrics: float) -> None:
        now = time.perf_counter()
        if not force and now - self.last < self.interval_s and step < self.total:
            return
        self.last = now
        done = step - self.start_step
        elapsed = now - self.started
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - step) / rate if rate > 0 else None
        emit("progress", label=self.label, step=step, total=self.total,
             percent=round(100.0 * step / self.total, 1), steps_per_s=round(rate, 2),
             eta_s=None if eta is None else round(eta, 1), **metrics)


def main(entry: Callable[[dict], dict], user_errors: tuple[type[BaseException], ...] = ()) -> None:
    """Run `entry(request)` and report its result or its failure to the parent."""
    from tasks.errors import TfpipeError

    with open(sys.argv[1], encoding="utf-8") as handle:
        request = json.load(handle)
    try:
        result = entry(request)
    except (TfpipeError, *user_errors) as exc:
        emit("error", message=str(exc))
        sys.exit(EXIT_USER_ERROR)
    except Exception as exc:
        traceback.print_exc()
        emit("error", message=f"{type(exc).__name__}: {exc}")
        sys.exit(EXIT_CRASH)
    emit("result", result=result)
