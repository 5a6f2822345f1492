"""The one protocol between the Luigi process and a stage's own process.

Parent side (`run_stage`): write the request, have the task's executor plugin run
``python -m <stage module> REQUEST.json`` and relay what it says (`Relay`). The
default executor, `local` (`run_local`), starts it as a child that dies with its
parent (PR_SET_PDEATHSIG), so killing a run never leaves an orphan writing into
an output folder; others (plugins/executors/slurm.py) run it elsewhere.
Child side (`main`, `emit`, `Progress`): read the request, report progress and
log lines on stdout lines starting with EVENT_PREFIX, return a result. Anything
else the child prints passes through as log text. No TensorFlow here.
"""
from __future__ import annotations

import functools
import json
import logging
import os
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable

from plugins.errors import TfpipeError
from tasks import atomic

logger = logging.getLogger(__name__)
_PR_SET_PDEATHSIG = 1
EVENT_PREFIX = "@@tfpipe "
EXIT_USER_ERROR = 2
EXIT_CRASH = 3
# Stopped on request (a preemption or time-limit warning) after a checkpoint: run it again.
EXIT_REQUEUE = 75
# The stages whose work runs in its own process (StageTask.stage), as executor options name them.
PROCESS_STAGES = ("preprocess", "train", "evaluate", "generate")
# Signal names (e.g. "USR1 TERM") on which a training worker checkpoints and exits EXIT_REQUEUE.
STOP_SIGNALS_ENV = "TFPIPE_STOP_SIGNALS"


# ----- child side -----------------------------------------------------
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


class StopRequest:
    """Remembers a stop signal (those named in $TFPIPE_STOP_SIGNALS; none when unset) so a
    training loop can checkpoint at the next step boundary and raise Stopped."""

    def __init__(self) -> None:
        self.signal: int | None = None
        for name in os.environ.get(STOP_SIGNALS_ENV, "").split():
            signal.signal(getattr(signal, f"SIG{name.upper().removeprefix('SIG')}"), self._remember)

    def _remember(self, number: int, frame: Any) -> None:
        self.signal = number


class Stopped(Exception):
    """A worker stopped on a stop signal after writing a checkpoint at `step`."""

    def __init__(self, number: int, step: int):
        super().__init__(f"stopped by {signal.Signals(number).name} at step {step} after writing a "
                         f"checkpoint there; running it again resumes from it")


def main(entry: Callable[[dict], dict], user_errors: tuple[type[BaseException], ...] = ()) -> None:
    """Run `entry(request)` and report its result or its failure to the parent."""
    sys.exit(run_request(entry, sys.argv[1], user_errors))


def run_request(entry: Callable[[dict], dict], request_path: str,
                user_errors: tuple[type[BaseException], ...] = ()) -> int:
    """Run `entry` on the request file; emit its result or error; return the process's exit code."""
    with open(request_path, encoding="utf-8") as handle:
        request = json.load(handle)
    try:
        result = entry(request)
    except Stopped as exc:
        emit("error", message=str(exc))
        return EXIT_REQUEUE
    except (TfpipeError, *user_errors) as exc:
        emit("error", message=str(exc))
        return EXIT_USER_ERROR
    except Exception as exc:
        traceback.print_exc()
        emit("error", message=f"{type(exc).__name__}: {exc}")
        return EXIT_CRASH
    emit("result", result=result)
    return 0


# ----- parent side ----------------------------------------------------
@functools.cache
def die_with_parent() -> Callable[[], Any] | None:
    """preexec_fn of a stage's process: the kernel kills it when this process dies. ctypes and libc
    load here, in the parent, when the first process starts (a rerun with nothing to do loads neither)."""
    import ctypes

    try:
        prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except OSError:
        return None  # not Linux: the child may outlive a killed parent
    return functools.partial(prctl, _PR_SET_PDEATHSIG, signal.SIGKILL)


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


def run_stage(task: Any, request: dict[str, Any], folder: Path, env: dict[str, str] | None = None,
              needs: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run the module that defines `task` as ``python -m MODULE request.json`` (its `work()`)
    where the task's executor plugin says (`local`: a subprocess of this one); return the
    result it reports. `needs`: the GPUs and workers a device policy asks of an executor that
    hands them out itself (tasks.devices.cluster_needs)."""
    module = type(task).__module__
    executor, options = executor_of(task)
    child_env = child_environment(env)
    if hasattr(executor, "allocate_devices"):
        if needs is not None:
            options = executor.allocate_devices(options, needs,
                                                 lambda key: f"executors.{executor_name(executor)}.{key}")
        if "CUDA_VISIBLE_DEVICES" not in (env or {}):
            # This machine's GPUs mean nothing where the job runs: the cluster sets the job's own.
            child_env.pop("CUDA_VISIBLE_DEVICES", None)
    request_path = folder / "request.json"
    atomic.write_json(request_path, request)
    command = [sys.executable, "-m", module, str(request_path)]
    logger.info("starting %s for %s", module, task.task_id)
    return executor.run(task, command, folder, child_env, options)


def executor_name(executor: Any) -> str:
    """An executor plugin's name (its module's last part: slurm), as executors.<name> options use it."""
    return executor.__name__.rsplit(".", 1)[-1]


def executor_of(task: Any) -> tuple[Any, dict[str, Any]]:
    """The task's executor plugin (loaded) and its options for the task's stage: the plugin's
    DEFAULTS, the options given, then those under ``stages: {<stage>: {...}}``. A stage entry
    with its own ``executor`` runs that executor with that entry's options alone."""
    import importlib

    from luigi.freezing import recursively_unfreeze

    from plugins.registry import EXECUTORS

    given = recursively_unfreeze(getattr(task, "executor_options", {}))
    # A task that is not a pipeline stage (a test's probe) has no stage: no per-stage options.
    per_stage = (given.pop("stages", None) or {}).get(getattr(task, "stage", None)) or {}
    name = getattr(task, "executor", "local")
    if per_stage.get("executor", name) != name:
        name, given = per_stage.pop("executor"), {}
    per_stage.pop("executor", None)
    if name == "local" and "local" not in EXECUTORS.names():
        # Installed before the tfpipe.executors entry points existed (`pip install -e .` not rerun):
        # the default still runs. Imported by name: where a stage runs is not part of its fingerprint.
        executor = importlib.import_module("plugins.executors.local")
    else:
        executor = EXECUTORS.load(name)
    options = {**executor.DEFAULTS, **given, **per_stage}
    options.pop("stages", None)
    return executor, options


def run_local(task: Any, command: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run `command` as a child of this process (it dies with it) and relay what it says."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=None, text=True,
                               env=env, preexec_fn=die_with_parent())
    relay = Relay(task, command[2])
    assert process.stdout is not None
    for line in process.stdout:
        relay.line(line)
    return {**relay.outcome(process.wait()), "process": {"pid": process.pid, "stage": 1}}


class Relay:
    """What a stage's process prints, turned into log lines, the task's progress and status
    message, and its result or error (one per run of the process)."""

    def __init__(self, task: Any, module: str):
        self.task, self.module = task, module
        self.result: dict[str, Any] | None = None
        self.error: str | None = None
        self.exit_code: int | None = None  # set by a stage server's exit event (tasks.stage_server)

    def line(self, line: str) -> None:
        if not line.startswith(EVENT_PREFIX):
            sys.stderr.write(line)
            return
        event = json.loads(line[len(EVENT_PREFIX):])
        kind = event.pop("event")
        if kind == "progress":
            message = _describe_progress(event)
            logger.info(message)
            self.task.set_progress_percentage(event["percent"])
            self.task.set_status_message(message)
        elif kind == "log":
            logger.info("%s", event["message"])
        elif kind == "result":
            self.result = event["result"]
        elif kind == "error":
            self.error = event["message"]
        elif kind == "exit":
            self.exit_code = event["code"]

    def outcome(self, code: int) -> dict[str, Any]:
        """The result, or the error for exit status `code`."""
        if code == 0 and self.result is not None:
            return self.result
        if code < 0:
            self.error = self.error or f"killed by signal {-code}"
        message = self.error or f"{self.module} exited with code {code} without a result; see its output above"
        raise TfpipeError(message) if code == EXIT_USER_ERROR else StageCrash(message)


class StageCrash(RuntimeError):
    """A stage's process crashed (its traceback is in the log above) or was killed. Not a user
    error: Luigi keeps the traceback and luigid retries the task once (tasks.base)."""
