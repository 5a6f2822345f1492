"""A user error ends a command-line run with one line, once, as the last line, without a traceback.

A user error is a ``plugins.errors.TfpipeError``: its message already says what is wrong,
where and what to do. Luigi logs it on its 'luigi-interface' logger with a traceback (as
``exc_info`` when run() or a task's __init__ raised it, as text in "Will not run ... due to
error in complete() method:" when complete() or requires() raised it while scheduling).
While a command line runs (`luigi --module pipelines ...` or `python -m pipelines run`), a
filter on that logger drops those tracebacks and remembers the message; when the `luigi`
command exits, each message is printed once as ``tfpipe: error: MESSAGE``, after Luigi's
execution summary. `python -m pipelines run` prints its own last line instead.

Luigi runs tasks of ``--workers N`` (N > 1) in forked processes: they write what they
remember to a file the forking process opened, which it reads at exit. A user error is
not retried either: see ``PipelineTask.retry_count`` and ``report_final`` in tasks/base.py.
Two of Luigi's own errors are a user's mistakes on the command line too, and end the same way:
a task name Luigi does not know, and a required parameter missing (most often: a stage task
named directly instead of the run task that sets its parameters).

Real crashes (any other exception) keep their tracebacks.
"""
from __future__ import annotations

import atexit
import fcntl
import json
import logging
import os
import re
import sys
import tempfile

from luigi.cmdline_parser import CmdlineParser
from luigi.parameter import MissingParameterException
from luigi.task import Task
from luigi.task_register import Register, TaskClassException, TaskClassNotFoundException

from plugins.errors import TfpipeError

LUIGI_LOGGER = "luigi-interface"
_TRACEBACK = "Traceback (most recent call last):"
_UNCAUGHT = "Uncaught exception in luigi"  # luigi.retcodes.run_with_retcodes: the `luigi` command
_EXCEPTION_LINE = re.compile(r"(?P<name>[A-Za-z_][\w.]*): (?P<message>.*)")
_MISSING = re.compile(r"(?P<task>[\w.]+)\[args=.*\]: requires the '(?P<param>\w+)' parameter to be set")

_state: dict[str, object] = {"channel": None, "owner": None, "print_at_exit": True}


def install() -> None:
    """Filter Luigi's logger and print the remembered errors at exit (once per process)."""
    if _state["owner"] is not None:
        return
    _state["owner"] = os.getpid()
    # Unlinked, opened before Luigi forks task processes: they inherit it and append to it.
    channel = tempfile.TemporaryFile()
    flags = fcntl.fcntl(channel.fileno(), fcntl.F_GETFL)
    fcntl.fcntl(channel.fileno(), fcntl.F_SETFL, flags | os.O_APPEND)
    _state["channel"] = channel
    logging.getLogger(LUIGI_LOGGER).addFilter(_drop_user_error_tracebacks)
    atexit.register(_print_at_exit)
    sys.excepthook = _unknown_task_hook(sys.excepthook)


def _unknown_task_hook(previous):
    """`luigi --module pipelines TextRunn`: Luigi raises outside its own error handling, so Python
    would print a traceback; say Luigi's message (it names the nearest task names) in one line."""
    def hook(kind, error, traceback):
        if isinstance(error, TaskClassNotFoundException) and os.getpid() == _state["owner"]:
            remember(str(error))
            return  # _print_at_exit says it; Python still exits with status 1
        previous(kind, error, traceback)
    return hook


def missing_parameter_message(error: MissingParameterException) -> str:
    """What to do about a required parameter missing on the command line."""
    from pipelines.run_task import RunTask

    text = str(error)
    match = _MISSING.fullmatch(text)
    try:
        task = Register.get_task_cls(match["task"]) if match else None
    except TaskClassException:
        task = None
    if task is None or issubclass(task, RunTask):
        return text
    runs = sorted(name for name, cls in Register._get_reg().items()  # the leaves: runs users start
                  if isinstance(cls, type) and issubclass(cls, RunTask) and not cls.__subclasses__())
    return (f"{task.__name__} is a stage that a run task sets up: its parameters (here '{match['param']}') come "
            f"from the settings through the run task. Run one of {', '.join(runs)} instead, e.g. "
            "`luigi --module pipelines FullRun --local-scheduler`")


def print_at_exit(enabled: bool) -> None:
    """`python -m pipelines run` ends with its own line and turns the exit line off."""
    _state["print_at_exit"] = enabled


def seen() -> list[tuple[str | None, str]]:
    """(task id or None, message) of each user error remembered so far by this process and the
    task processes it forked; a message once."""
    channel = _state["channel"]
    if channel is None:
        return []
    text = os.pread(channel.fileno(), 1 << 20, 0).decode("utf-8", "replace")
    found: dict[str, str | None] = {}
    for line in text.splitlines():
        entry = json.loads(line)
        found.setdefault(entry["message"], entry["task"])
    return [(task, message) for message, task in found.items()]


def remember(message: str, task_id: str | None = None) -> None:
    channel = _state["channel"]
    if channel is None:
        return
    # One write of one line to a file opened with O_APPEND: lines of concurrent task processes
    # never interleave.
    line = json.dumps({"task": task_id, "message": message}) + "\n"
    os.write(channel.fileno(), line.encode("utf-8"))


def user_error_in(formatted: str) -> str | None:
    """The message of the exception a formatted traceback ends with, if it is a TfpipeError."""
    lines = formatted.rstrip().splitlines()
    starts = [index for index, line in enumerate(lines) if line.startswith(_TRACEBACK)]
    if not starts:
        return None
    for index in range(starts[-1] + 1, len(lines)):
        if lines[index][:1].isspace():
            continue  # a frame of the traceback
        match = _EXCEPTION_LINE.fullmatch(lines[index])
        if match is None or not _is_user_error(match["name"]):
            return None
        return "\n".join([match["message"], *lines[index + 1:]]).strip()
    return None


def _is_user_error(qualified_name: str) -> bool:
    """Whether the exception class 'pipelines.settings.ConfigError' is a TfpipeError (classes of
    loaded modules only: the text comes from this process or one it forked)."""
    module_name, _, name = qualified_name.rpartition(".")
    found: object = sys.modules.get(module_name or "builtins")
    for part in name.split("."):
        found = getattr(found, part, None)
    return isinstance(found, type) and issubclass(found, TfpipeError)


def _drop_user_error_tracebacks(record: logging.LogRecord) -> bool:
    """Logging filter: False drops the record; a kept record may lose its traceback."""
    user_error = record.exc_info[1] if record.exc_info else None
    if isinstance(user_error, MissingParameterException) and record.msg == _UNCAUGHT:
        remember(missing_parameter_message(user_error))  # the task named on the command line lacks it
        return False
    if not isinstance(user_error, TfpipeError):
        user_error = None
    if user_error is not None and record.msg == _UNCAUGHT:
        remember(str(user_error))  # raised before any task ran: the last line says it all
        return False
    if CmdlineParser.get_instance() is None:
        return True  # luigi.build() from Python: the caller sees Luigi's log unchanged
    if user_error is not None:
        task = next((arg for arg in _args(record) if isinstance(arg, Task)), None)
        remember(str(user_error), task.task_id if task is not None else None)
        record.exc_info, record.exc_text = None, None  # keep "[pid] Worker ... failed TASK"
        return True
    message = record.getMessage()
    if message.startswith("Will not run ") and _TRACEBACK in message:
        error = user_error_in(message)
        if error is not None:
            remember(error)
            record.msg = message.split(" due to error in ")[0] + ": the reason is the last line"
            record.args = ()
    return True


def _args(record: logging.LogRecord) -> tuple:
    return record.args if isinstance(record.args, tuple) else ()


def _print_at_exit() -> None:
    if os.getpid() != _state["owner"] or not _state["print_at_exit"]:
        return  # a forked task process, or `python -m pipelines run` (it says why itself)
    messages = seen()
    if messages:
        sys.stdout.flush()
        sys.stderr.flush()
        for _, message in messages:
            one_line = " ".join(message.split())
            sys.stderr.write(f"tfpipe: error: {one_line}\n")
        sys.stderr.flush()
