"""Luigi's command line with exit codes a timer, cron or monitoring can act on.

``python -m pipelines run TASK [luigi options]`` runs like ``luigi --module
pipelines TASK`` and keeps luigi's [retcode] codes, with two differences:

* it exits 0 when the requested task is complete at the end, also when another
  worker (under luigid) ran some of its tasks while this run waited (plain
  ``luigi`` reports that as "already running"), and it waits for the tasks still
  running under another worker when Luigi's worker stops;
* when it fails, its last stderr line is one line saying why:
  ``tfpipe: FAILED (exit 30): ScheduledRun(date=2024-05-01): TrainImageModel failed: ...``.
"""
from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import luigi
import luigi.execution_summary as summary
import luigi.interface
from luigi.cmdline_parser import CmdlineParser
from luigi.parameter import MissingParameterException
from luigi.retcodes import retcode

from pipelines import user_errors
from plugins.errors import TfpipeError

logger = logging.getLogger(__name__)
_MAX_REASON = 500


def one_line(text: str) -> str:
    """The line of a failure explanation that says what went wrong."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    if not lines:
        return ""
    # luigi's default explanation is "Runtime error:" + traceback: the exception is the last line.
    line = lines[-1] if lines[0].lower().startswith(("runtime error", "traceback")) else lines[0]
    return line[:_MAX_REASON]


def _exit_code(codes: Any, sets: dict[str, set], root: luigi.Task) -> int:
    """luigi.retcodes.run_with_retcodes's rule."""
    def has(status: str) -> bool:
        return bool(sets.get(status))

    code = max(
        codes.missing_data * has("still_pending_ext"),
        codes.task_failed * has("failed"),
        codes.already_running * has("run_by_other_worker"),
        codes.scheduling_error * has("scheduling_error"),
        codes.not_run * has("not_run"),
    )
    if code == 0 and root not in sets["completed"] and root not in sets["already_done"]:
        code = codes.not_run
    return code or codes.not_run  # the root is incomplete: never report success


def _is_complete(task: luigi.Task) -> bool:
    try:
        return bool(task.complete())
    except Exception:  # noqa: BLE001  a broken complete() is reported by luigi's own summary
        return False


def _wait_for_other_workers(worker: Any, root: luigi.Task, sets: dict[str, set], poll: float = 1.0) -> None:
    """Under luigid, Luigi's worker stops as soon as every task it still needs is running under
    another worker (keep_alive counts pending tasks only), often while that worker finishes the
    root. Wait while the scheduler shows one of them running, so this run ends with their result."""
    others = {task.task_id for task in sets.get("run_by_other_worker", ())}
    announced = False
    while others and not _is_complete(root):
        try:
            running = others & set(worker._scheduler.task_list("RUNNING", ""))
        except Exception:  # noqa: BLE001  scheduler gone: report what is known now
            return
        if not running:
            return  # done, failed, or its worker died: the check after this says which
        if not announced:
            logger.info("waiting for %s, running under another worker", ", ".join(sorted(running)))
            announced = True
        time.sleep(poll)


def _reason(worker: Any, failures: list[str], sets: dict[str, set]) -> str:
    errors = user_errors.seen()  # also those of forked task processes (--workers N)
    if errors:
        return "; ".join(f"{task}: {one_line(error)}" if task else one_line(error) for task, error in errors)
    if failures:
        return failures[0]
    # complete() raised while scheduling: luigi logged the traceback but passed no exception on.
    for task in sets.get("scheduling_error", ()):
        try:
            task.complete()
            task.deps()
        except Exception as exc:  # noqa: BLE001  whatever complete()/deps() raised is the reason
            return f"{task.task_id}: {one_line(str(exc)) or type(exc).__name__}"
    # Failed elsewhere (another worker under luigid) or disabled: ask the scheduler.
    for task in reversed(list(worker._scheduled_tasks.values())):
        if _is_complete(task):
            continue
        try:
            error = worker._scheduler.fetch_error(task.task_id).get("error") or ""
        except Exception:  # noqa: BLE001  scheduler gone: fall back to luigi's summary
            break
        if error.strip():
            return f"{task.task_id}: {one_line(_unquoted(error))}"
    status = summary._tasks_status(sets)
    return summary._create_one_line_summary(status).strip() or status.name


def _unquoted(error: str) -> str:
    """A failure explanation as the worker reported it (luigi sends it JSON-encoded)."""
    try:
        decoded = json.loads(error)
    except ValueError:
        return error
    return decoded if isinstance(decoded, str) else error


def run(argv: list[str]) -> int:
    """Run `luigi --module pipelines` with `argv`; return the exit code (see module doc)."""
    argv = ["--module", "pipelines", *argv]
    with CmdlineParser.global_instance(argv):
        codes = retcode()
    failures: list[str] = []

    def _remember(task: luigi.Task, exception: BaseException) -> None:
        failures.append(f"{task.task_id}: {one_line(str(exception)) or type(exception).__name__}")

    # FAILURE: run() raised; BROKEN_TASK: complete() or requires() raised while scheduling.
    luigi.Task.event_handler(luigi.Event.FAILURE)(_remember)
    luigi.Task.event_handler(luigi.Event.BROKEN_TASK)(_remember)
    user_errors.print_at_exit(False)  # the line below says why

    try:
        worker = luigi.interface._run(argv).worker
    except luigi.interface.PidLockAlreadyTakenExit:
        return fail(codes.already_running, "ALREADY RUNNING",
                    "the same command is already running on this host and workspace (luigi's pid "
                    "lock); this run did nothing")
    except TfpipeError as exc:  # raised before any task ran (e.g. no scheduler to talk to)
        return fail(codes.unhandled_exception, "ERROR", one_line(str(exc)))
    except MissingParameterException as exc:  # e.g. a stage task named instead of its run task
        return fail(codes.unhandled_exception, "ERROR", one_line(user_errors.missing_parameter_message(exc)))
    except Exception as exc:  # luigi's CLI does the same: log it, exit unhandled_exception
        logger.exception("uncaught exception in luigi")
        return fail(codes.unhandled_exception, "ERROR", one_line(f"{type(exc).__name__}: {exc}"))

    with CmdlineParser.global_instance(argv):
        sets = summary._summary_dict(worker)
        root = summary._root_task(worker)
    _wait_for_other_workers(worker, root, sets)
    if _is_complete(root):
        return 0
    code = _exit_code(codes, sets, root)
    return fail(code, "FAILED", f"{root.task_id} is not complete: {_reason(worker, failures, sets)}")


def report_path(argv: list[str]) -> Path | None:
    """The report.html of the run task `argv` names (None for other tasks)."""
    from pipelines.run_task import RunTask

    with CmdlineParser.global_instance(["--module", "pipelines", *argv]) as parser:
        root = parser.get_task_obj()
        return root.report_path() if isinstance(root, RunTask) else None


def fail(code: int, label: str, reason: str) -> int:
    sys.stderr.write(f"tfpipe: {label} (exit {code}): {reason}\n")
    sys.stderr.flush()
    return code
