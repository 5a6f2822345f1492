"""`slurm`: each stage's process runs as a Slurm job, submitted and watched from the Luigi worker.

The workspace must be on a filesystem the compute nodes share. Per task folder:

- ``slurm-job.sh``: the batch script, which runs the stage under plugins.executors.slurm_job;
- ``slurm-job.json``: the job id (a rerun reattaches to a job still queued or running there,
  and never submits a second one for the folder);
- ``slurm-<jobid>.out``: the job's output, tailed here for the stage's progress and result;
- ``slurm-heartbeat``: touched here every poll; a job whose heartbeat stops (the Luigi worker
  was killed, even by SIGKILL) checkpoints and ends itself, so no orphan keeps a GPU.

A job warned of its end (``--signal``: preemption or time limit) checkpoints and exits with
tasks.protocol.EXIT_REQUEUE; it is resubmitted and resumes from that checkpoint.

Device policies compose (`allocate_devices`): a training's GPU policy becomes the job's ``--gpus``
(Slurm sets CUDA_VISIBLE_DEVICES in the job), and ``multi_worker`` runs one TensorFlow worker per
Slurm task under ``srun`` (plugins/executors/slurm_workers.py).
"""
from __future__ import annotations

import json
import logging
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

from plugins.errors import TfpipeError
from tasks import atomic
from tasks.protocol import (
    EVENT_PREFIX,
    EXIT_REQUEUE,
    EXIT_USER_ERROR,
    PROCESS_STAGES,
    STOP_SIGNALS_ENV,
    Relay,
    StageCrash,
)

logger = logging.getLogger(__name__)

KIND = "executor"
DEFAULTS: dict[str, Any] = {
    "partition": None,  # --partition
    "account": None,  # --account
    "qos": None,  # --qos
    "time": None,  # --time: minutes, or Slurm's text ("02:00:00", "1-00:00:00")
    "cpus": None,  # --cpus-per-task
    "mem": None,  # --mem: megabytes, or text with a unit ("16G")
    "gpus": None,  # --gpus
    "gres": None,  # --gres, for clusters that want it instead of --gpus ("gpu:2", "gpu:a100:1")
    "nodes": None,  # --nodes: train with device policy multi_worker only (one worker per task)
    "ntasks": None,  # --ntasks: the same; default: one task per node
    "sbatch_args": [],  # further sbatch flags, passed as given
    "signal_before_s": 120,  # --signal=B:USR1@N: warning before the time limit, to checkpoint
    "poll_s": 2.0,  # seconds between two looks at the job
    "heartbeat_timeout_s": 60,  # a job whose Luigi worker is silent this long ends itself
    "stages": {},  # per stage (preprocess, train, evaluate, generate): options over these
}
# What each option must be: accepted types and a one-phrase description.
_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "partition": ((str,), "a partition name"),
    "account": ((str,), "an account name"),
    "qos": ((str,), "a QOS name"),
    "time": ((str, int), "minutes or a Slurm time such as '02:00:00'"),
    "cpus": ((int,), "a whole number of CPUs, at least 1"),
    "mem": ((str, int), "megabytes or text with a unit such as '16G'"),
    "gpus": ((int,), "a whole number of GPUs, at least 0"),
    "gres": ((str,), "a Slurm gres such as 'gpu:2'"),
    "nodes": ((int,), "a whole number of nodes, at least 1"),
    "ntasks": ((int,), "a whole number of tasks, at least 1"),
    "sbatch_args": ((list,), "a list of sbatch flags such as ['--constraint=a100']"),
    "signal_before_s": ((int,), "whole seconds, at least 1"),
    "poll_s": ((int, float), "seconds greater than 0"),
    "heartbeat_timeout_s": ((int, float), "seconds greater than 0"),
}
_MINIMUM = {"cpus": 1, "gpus": 0, "signal_before_s": 1, "nodes": 1, "ntasks": 1}
_POSITIVE = ("poll_s", "heartbeat_timeout_s")
STAGES = PROCESS_STAGES
_FLAGS = {"partition": "--partition", "account": "--account", "qos": "--qos", "time": "--time",
          "cpus": "--cpus-per-task", "mem": "--mem", "gpus": "--gpus", "gres": "--gres", "nodes": "--nodes",
          "ntasks": "--ntasks"}
# Set by allocate_devices, not by users: run one worker per task under srun (multi_worker).
WORKERS = "per_task_workers"
_SEVERAL_TASKS = ("several tasks run the whole stage side by side; only the train stage under device "
                  "policy multi_worker runs one worker per task: set nodes or ntasks under "
                  "executors.slurm.stages.train and use --device multi_worker")

RECORD = "slurm-job.json"
SCRIPT = "slurm-job.sh"
HEARTBEAT = "slurm-heartbeat"
# Job states in which a job may still run (a rerun reattaches to it instead of submitting).
_ALIVE = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED",
          "RESIZING", "SUSPENDED", "STOPPED", "SIGNALING", "STAGE_OUT", "RESV_DEL_HOLD", "SPECIAL_EXIT"}
_LOG_TAIL = 20


# ----- checked in the Luigi process while scheduling ---------------------------------------

def check(options: dict[str, Any], where: Callable[[str | None], str]) -> None:
    """Types and ranges of the options (`where(key)`: file:line of an option, `where(None)`: where the
    executor was chosen), and sbatch on PATH."""
    _check_values(options, "", where)
    stages = options.get("stages") or {}
    if not isinstance(stages, dict):
        raise TfpipeError(f"{where('stages')}: executors.slurm.stages must be a mapping of stage names "
                          f"({', '.join(STAGES)}) to options, got {stages!r}")
    for stage, per_stage in stages.items():
        if stage not in STAGES:
            raise TfpipeError(f"{where(f'stages.{stage}')}: unknown stage {stage!r} in executors.slurm.stages; "
                              f"stages are {', '.join(STAGES)}")
        if not isinstance(per_stage, dict):
            raise TfpipeError(f"{where(f'stages.{stage}')}: executors.slurm.stages.{stage} must be a mapping "
                              f"of options, got {per_stage!r}")
        for key in per_stage:
            if key not in _TYPES:
                raise TfpipeError(f"{where(f'stages.{stage}.{key}')}: unknown option {key!r} in "
                                  f"executors.slurm.stages.{stage}; options are {', '.join(_TYPES)}")
        _check_values(per_stage, f"stages.{stage}.", where)
        if stage != "train":
            _single_task(per_stage, f"stages.{stage}.", where)
    _single_task(options, "", where)
    if shutil.which("sbatch") is None:
        raise TfpipeError(f"{where(None)}: the slurm executor needs Slurm's sbatch, which is not on PATH; run "
                          "on a Slurm login node (or put Slurm's commands on PATH), or use --executor local")


def _check_values(options: dict[str, Any], prefix: str, where: Callable[[str | None], str]) -> None:
    for key, (types, what) in _TYPES.items():
        value = options.get(key)
        if value is None:
            continue
        label = f"executors.slurm.{prefix}{key}"
        wrong = isinstance(value, bool) or not isinstance(value, types)
        if key == "sbatch_args" and not wrong:
            wrong = not all(isinstance(item, str) for item in value)
        if not wrong and key in _MINIMUM:
            wrong = value < _MINIMUM[key]
        if not wrong and key in _POSITIVE:
            wrong = value <= 0
        if wrong:
            raise TfpipeError(f"{where(prefix + key)}: {label} must be {what}, got {value!r}")


def _single_task(options: dict[str, Any], prefix: str, where: Callable[[str | None], str]) -> None:
    for key in ("nodes", "ntasks"):
        if (options.get(key) or 1) > 1:
            raise TfpipeError(f"{where(prefix + key)}: executors.slurm.{prefix}{key} is {options[key]}, but "
                              + _SEVERAL_TASKS)


def _gres_gpus(gres: str) -> int | None:
    """GPUs in a gres ("gpu:2", "gpu:a100:1", "gpu" is one); None if it names none."""
    for item in gres.split(","):
        parts = item.strip().split(":")
        if parts[0] == "gpu":
            return int(parts[-1]) if len(parts) > 1 and parts[-1].isdigit() else 1
    return None


def allocate_devices(options: dict[str, Any], needs: dict[str, Any], where: Callable[[str], str]) -> dict[str, Any]:
    """The job's options with what a training's device policy needs (tasks.devices.cluster_needs):
    its GPU count becomes --gpus unless gpus or gres already ask for GPUs (then they must agree;
    count: all takes theirs), and multi_worker one task per worker. `where(key)`: where an option
    was set, for errors."""
    options, policy, wanted = dict(options), needs["policy"], needs["gpus"]
    asked = [(key, count) for key, count in (("gpus", options.get("gpus")),
                                             ("gres", options.get("gres") and _gres_gpus(options["gres"])))
             if count is not None]
    if wanted == "all" and not asked:
        raise TfpipeError(f"{where('gpus')}: device policy {policy} asks for all GPUs (count: all), but a Slurm job "
                          "has only the GPUs it asks for: give the device option count: N, or set executors.slurm.gpus")
    if wanted in ("any", "all"):
        if not asked:  # "any": a GPU policy without a count (memory_growth) needs one at least
            options["gpus"] = 1
    elif wanted:
        for key, count in asked:
            if count != wanted:
                raise TfpipeError(f"{where(key)}: executors.slurm.{key} asks Slurm for {count} GPU(s) but device "
                                  f"policy {policy} uses {wanted} (device option count); make them agree, or drop "
                                  f"executors.slurm.{key} and let the device policy ask")
        if not asked:
            options["gpus"] = wanted
    if needs["workers"]:
        if not options.get("nodes") and not options.get("ntasks"):
            raise TfpipeError(f"{where('nodes')}: device policy {policy} under the slurm executor runs one worker per "
                              "Slurm task: set executors.slurm.stages.train.nodes (one worker per node) or ntasks")
        options["ntasks"] = options.get("ntasks") or options["nodes"]
        options[WORKERS] = True
    else:
        _single_task(options, "", where)
    return options


# ----- running a stage ---------------------------------------------------------------------

def run(task: Any, command: list[str], folder: Path, env: dict[str, str], options: dict[str, Any]) -> dict[str, Any]:
    """Run `command` as a Slurm job (reattaching to one still alive for this folder), resubmitting it
    after a preemption; return the stage's result with the jobs it took."""
    folder = folder.resolve()
    if not options.get(WORKERS):
        _single_task(options, "", lambda key: f"the {task.stage} stage")
    env = {**env, STOP_SIGNALS_ENV: "USR1 TERM"}
    heartbeat = folder / HEARTBEAT
    heartbeat.touch()
    jobs: list[dict[str, Any]] = []
    job_id = _alive_recorded_job(folder)
    with _cancelled_if_interrupted(lambda: job_id):
        while True:
            if job_id is None:
                job_id = _submit(task, command, folder, env, options)
            relay = Relay(task, command[2])
            state = _watch(task, job_id, folder, relay, options)
            log = folder / f"slurm-{job_id}.out"
            jobs.append({"job_id": job_id, "state": state["JobState"], "exit_code": state["ExitCode"],
                         "restarts": state.get("Restarts", "0"), "log": log.name})
            code, killed_by = _exit_code(state)
            if state["JobState"] == "COMPLETED" and relay.result is not None:
                return {**relay.result, "slurm": {"jobs": jobs}}
            # Stopped by its own warning signal (or preempted by Slurm): go on where it stopped. A job
            # cancelled by a user (scancel) also checkpoints, but stays cancelled.
            ended = state["JobState"]
            if ended == "PREEMPTED" or (code == EXIT_REQUEUE and ended in ("FAILED", "TIMEOUT")):
                logger.info("slurm job %s stopped early (%s); resubmitting: it resumes from its checkpoint",
                            job_id, relay.error or state["JobState"])
                job_id = None
                continue
            raise _failure(relay, job_id, state, code, killed_by, log)


def _alive_recorded_job(folder: Path) -> str | None:
    """The job recorded in the folder, if it is still queued or running (a rerun takes it over)."""
    try:
        job_id = json.loads((folder / RECORD).read_text("utf-8"))["job_id"]
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return None
    state = job_state(job_id)
    if state is None or state["JobState"] not in _ALIVE:
        return None
    logger.info("reattaching to slurm job %s (%s), recorded in %s", job_id, state["JobState"], folder / RECORD)
    return job_id


def batch_script(command: list[str], folder: Path, options: dict[str, Any]) -> str:
    watcher = [sys.executable, "-m", "plugins.executors.slurm_job", "--heartbeat", str(folder / HEARTBEAT),
               "--timeout", str(options["heartbeat_timeout_s"]), *(["--workers"] if options.get(WORKERS) else []),
               "--"]
    return ("#!/bin/sh\n# Written by tfpipe (plugins/executors/slurm.py): the stage's process as a Slurm job.\n"
            f"exec {shlex.join(watcher + command)}\n")


def sbatch_command(task: Any, folder: Path, options: dict[str, Any]) -> list[str]:
    # --export=ALL: the stage needs this environment (PYTHONPATH, TFPIPE_*) even where a site makes
    # sbatch export nothing by default.
    args = ["sbatch", "--parsable", "--export=ALL", f"--job-name=tfpipe-{task.stage}-{folder.name}",
            f"--output={folder}/slurm-%j.out", "--open-mode=append", f"--chdir={os.getcwd()}",
            f"--signal=B:USR1@{options['signal_before_s']}"]
    args += [f"{flag}={options[key]}" for key, flag in _FLAGS.items() if options.get(key) is not None]
    return args + list(options.get("sbatch_args") or []) + [str(folder / SCRIPT)]


def _submit(task: Any, command: list[str], folder: Path, env: dict[str, str], options: dict[str, Any]) -> str:
    atomic.write_text(folder / SCRIPT, batch_script(command, folder, options))
    (folder / SCRIPT).chmod(0o755)
    args = sbatch_command(task, folder, options)
    try:
        done = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    except FileNotFoundError:  # a stage task named on the command line skips the scheduling check
        raise TfpipeError("the slurm executor needs Slurm's sbatch, which is not on PATH; run on a Slurm login "
                          "node (or put Slurm's commands on PATH), or use --executor local") from None
    if done.returncode != 0:
        said = "; ".join(line.strip() for line in done.stderr.splitlines() if line.strip()) or "no message"
        raise TfpipeError(f"sbatch refused the {task.stage} job of {folder}: {said}. Fix the Slurm options "
                          f"(executors.slurm in your config, or --executor-options) and rerun")
    job_id = done.stdout.strip().split(";")[0]
    atomic.write_json(folder / RECORD, {"job_id": job_id, "submitted": time.time(), "sbatch": args})
    logger.info("submitted slurm job %s for %s (log: %s)", job_id, task.task_id, folder / f"slurm-{job_id}.out")
    return job_id


def _watch(task: Any, job_id: str, folder: Path, relay: Relay, options: dict[str, Any]) -> dict[str, str]:
    """Relay the job's output while it runs, keep its heartbeat fresh, show why it waits; return
    its final state (scontrol's fields)."""
    log, offset, reason = folder / f"slurm-{job_id}.out", 0, None
    while True:
        os.utime(folder / HEARTBEAT)
        state = job_state(job_id)
        offset = _relay_new_lines(log, offset, relay)
        if state is None:
            return {"JobState": "UNKNOWN (no longer known to Slurm)", "ExitCode": "?"}
        if state["JobState"] not in _ALIVE:
            time.sleep(0.2)  # the last lines may land just after the job ended
            _relay_new_lines(log, offset, relay, final=True)
            return state
        if state["JobState"] == "PENDING" and state.get("Reason", "None") not in ("None", reason):
            reason = state["Reason"]  # Resources, Priority, ...: why it waits
            message = f"slurm job {job_id} pending ({reason})"
            logger.info(message)
            task.set_status_message(message)
        elif state["JobState"] != "PENDING":
            reason = None
        time.sleep(options["poll_s"])


def _relay_new_lines(log: Path, offset: int, relay: Relay, final: bool = False) -> int:
    """Feed complete lines written after `offset` to the relay; return the new offset."""
    try:
        with open(log, "rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except FileNotFoundError:
        return offset
    end = len(data) if final else data.rfind(b"\n") + 1
    for line in data[:end].decode("utf-8", "replace").splitlines(keepends=True):
        relay.line(line if line.endswith("\n") else line + "\n")
    return offset + end


def job_state(job_id: str, tries: int = 5) -> dict[str, str] | None:
    """scontrol's fields of the job (JobState, Reason, ExitCode, ...); None once Slurm forgot it.
    (Without slurmdbd, sacct knows nothing: scontrol knows a job until MinJobAge after its end.)"""
    for attempt in range(tries):
        done = subprocess.run(["scontrol", "show", "job", "-o", str(job_id)], capture_output=True, text=True,
                              check=False)
        if done.returncode == 0:
            return dict(re.findall(r"(\w[\w/:]*)=(\S*)", done.stdout))
        if "Invalid job id" in done.stderr:
            return None
        time.sleep(2 ** attempt)  # a busy or restarting controller: ask again
    raise StageCrash(f"scontrol show job {job_id} failed {tries} times: {done.stderr.strip()}")


def _exit_code(state: dict[str, str]) -> tuple[int | None, int | None]:
    """(exit code, signal) of the batch script from scontrol's ExitCode=CODE:SIGNAL."""
    match = re.fullmatch(r"(\d+):(\d+)", state.get("ExitCode", ""))
    return (int(match.group(1)), int(match.group(2))) if match else (None, None)


def _failure(relay: Relay, job_id: str, state: dict[str, str], code: int | None, killed_by: int | None,
             log: Path) -> Exception:
    where = f"slurm job {job_id} ended {state['JobState']}"
    if code is not None:
        where += f" (exit code {code}" + (f", signal {killed_by})" if killed_by else ")")
    if code == EXIT_USER_ERROR and relay.error:
        return TfpipeError(f"{relay.error} [{where}; log {log}]")
    return StageCrash(f"{relay.error or 'the stage reported no error'} [{where}]; last lines of {log}:\n"
                      + "".join(_tail(log)))


def _tail(log: Path) -> list[str]:
    """The log's last lines as a person reads them: without the protocol's event lines."""
    try:
        lines = log.read_text("utf-8", "replace").splitlines(keepends=True)
    except FileNotFoundError:
        return ["(no log was written)\n"]
    return [line for line in lines if not line.startswith(EVENT_PREFIX)][-_LOG_TAIL:]


class _Interrupted(BaseException):
    """SIGTERM while a job runs: unwind so the job is cancelled."""


class _cancelled_if_interrupted:
    """Cancel the current job (scancel) when the Luigi worker stops while watching it: Ctrl-C,
    SIGTERM or any exception. SIGKILL cannot be caught: the job's heartbeat covers that."""

    def __init__(self, current_job: Callable[[], str | None]):
        self.current_job = current_job
        self.previous: Any = None

    def __enter__(self) -> None:
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGTERM, self._terminated)

    @staticmethod
    def _terminated(number: int, frame: Any) -> None:
        raise _Interrupted("SIGTERM")

    def __exit__(self, kind: Any, exc: Any, traceback: Any) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)
        if kind is None or isinstance(exc, (TfpipeError, StageCrash)):
            return  # the job ended (or was never submitted)
        job_id = self.current_job()
        if job_id is not None:
            subprocess.run(["scancel", str(job_id)], capture_output=True, check=False)
            logger.info("cancelled slurm job %s (%s)", job_id, kind.__name__.lstrip("_"))
        if isinstance(exc, _Interrupted):
            raise SystemExit(143) from None
