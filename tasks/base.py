"""The thin base task: fingerprinted folders, manifests and per-output locks.

Every task writes one folder ``<workspace>/<stage>/<name>-<fingerprint>/``.
Its ``manifest.json`` is written last and atomically; it alone marks the task
complete, so a crash at any point leaves a folder a later run redoes (or, for
training, resumes from its checkpoints) and never takes as finished. It lists
every file the task produced with its sha256 and is sealed (tasks/integrity.py);
before a task produces anything, every folder upstream of it is checked against
its manifest, so nothing changed since it was written is ever read.
"""
from __future__ import annotations

import errno
import fcntl
import functools
import json
import logging
import os
import platform
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import luigi
from luigi.freezing import recursively_unfreeze
from luigi.task import flatten

from plugins.errors import TfpipeError
from plugins.registry import distribution_version
from tasks import atomic, integrity, manifest_index
from tasks.content import HashCache
from tasks.fingerprint import code_hashes, digest
from tasks.integrity import ATTEMPTS, MANIFEST, IntegrityError

logger = logging.getLogger(__name__)

# Parameters that say where or how a task runs, never what it computes.
_NEVER_FINGERPRINTED = frozenset({"workspace"})


def installed_version(*distributions: str) -> str | None:
    """Version of the first installed distribution of those named, read from metadata only."""
    for name in distributions:
        version = distribution_version(name)
        if version is not None:
            return version
    return None


def library_versions() -> dict[str, str | None]:
    return dict(_library_versions())


@functools.lru_cache(maxsize=1)  # installed versions do not change under a running process
def _library_versions() -> dict[str, str | None]:
    return {
        "python": platform.python_version(),
        "tensorflow": installed_version("tensorflow", "tensorflow-cpu", "tf-nightly"),
        "keras": installed_version("keras"),
        "numpy": installed_version("numpy"),
        "luigi": installed_version("luigi"),
    }


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The manifest as it is, unchecked (None if absent or unreadable): for listings such as
    prune and explain. Results come from PipelineTask.manifest(), which checks its seal."""
    try:
        return json.loads((folder / MANIFEST).read_text("utf-8"))
    except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError):
        return None


@contextmanager
def output_lock(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on one output folder while it is written.

    flock is released by the kernel when its holder dies, so a lock left by a
    killed run is simply taken over by the next one; nobody waits forever.
    """
    lock_path = folder.parent / f".{folder.name}.lock"
    with open(lock_path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            logger.info("waiting for another process writing %s", folder)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class RequiredBoolParameter(luigi.BoolParameter):
    """A BoolParameter that must be given (luigi's BoolParameter always defaults to False);
    ``--flag``, ``--flag true`` and ``--flag false`` all parse."""

    def __init__(self, **kwargs: Any):
        super().__init__(parsing=luigi.BoolParameter.EXPLICIT_PARSING, **kwargs)
        self._default = luigi.parameter._no_value


class PipelineTask(luigi.Task):
    """Base of every tfpipe task.

    Subclasses set ``stage``, implement :meth:`produce` (write files into the
    folder, return what to record) and may extend :meth:`fingerprint_components`.
    """

    workspace = luigi.Parameter(
        default="workspace", significant=False, description="root folder of all run artefacts"
    )

    @property
    def retry_count(self) -> int:
        """Attempts before the scheduler disables the task (so every worker waiting on it,
        [worker] keep_alive, ends instead of waiting forever). Under luigid a failed task is
        retried once, after [scheduler] retry_delay: when a worker is killed, the scheduler
        counts its running task as failed and a waiting worker resumes it from its checkpoint.
        A user error is never retried (report_final). The in-process scheduler of
        --local-scheduler has no other worker to resume a task: one attempt."""
        return 1 if luigi.interface.core().local_scheduler else 2

    stage: ClassVar[str] = ""

    @classmethod
    def get_params(cls) -> list[tuple[str, luigi.Parameter]]:
        # Luigi lists a class's parameters with dir() and getattr() on every call, about 200 calls
        # per rerun (12 ms of a no-op); a task class's parameters are fixed once it is defined and
        # decorated (@requires, @from_settings), before anything asks, so each class lists them once.
        if "_listed_params" not in cls.__dict__:
            cls._listed_params = tuple(super().get_params())
        return list(cls._listed_params)

    # ----- identity -------------------------------------------------------
    def run_name(self) -> str:
        """Readable first part of the folder name."""
        return self.get_task_family().lower()

    def root(self) -> str:
        """The workspace this task writes under."""
        return self.workspace

    def label(self) -> str:
        """Stable, readable name of this task: family and run name (no hash)."""
        return f"{self.get_task_family()}/{self.run_name()}"

    def significant_params(self) -> dict[str, Any]:
        params = {}
        for name, param in self.get_params():
            if param.significant and name not in _NEVER_FINGERPRINTED:
                params[name] = recursively_unfreeze(self.param_kwargs[name])
        return params

    def code_modules(self) -> list[str]:
        # The stage module holds the task and the work() its own process runs.
        return [type(self).__module__]

    def follow_packages(self) -> list[str]:
        """Extra top-level packages whose imports count as this task's code (plugins)."""
        return []

    def upstream(self) -> list[PipelineTask]:
        return [task for task in flatten(self.requires()) if isinstance(task, PipelineTask)]

    def all_upstream(self) -> list[PipelineTask]:
        """Every pipeline task this one depends on, directly or not (a stage may read a folder
        two steps up: evaluation reads the preprocessed data beside the trained model)."""
        found: dict[Path, PipelineTask] = {}
        pending = self.upstream()
        while pending:
            task = pending.pop()
            if task.folder() not in found:
                found[task.folder()] = task
                pending.extend(task.upstream())
        return list(found.values())

    def hash_cache_file(self) -> Path:
        return Path(self.root()) / ".cache" / "file-hashes.json"

    def hash_cache(self) -> HashCache:
        """sha256 of files, cached by size, mtime, inode and ctime (tasks/content.py)."""
        return HashCache.at(self.hash_cache_file())

    def fingerprint_components(self) -> dict[str, Any]:
        return {
            "task": self.get_task_family(),
            "params": self.significant_params(),
            "code": code_hashes(self.code_modules(), self.follow_packages(),
                                Path(self.root()) / ".cache" / "code-hashes.json"),
            "upstream": {task.label(): task.fingerprint() for task in self.upstream()},
        }

    def components(self) -> dict[str, Any]:
        """fingerprint_components(), computed once: the manifest must record exactly what the
        folder name was derived from, even if a file changes while the task runs."""
        if "_components" not in self.__dict__:
            self.__dict__["_components"] = self.fingerprint_components()
        return self.__dict__["_components"]

    def fingerprint(self) -> str:
        if "_fingerprint" not in self.__dict__:
            self.__dict__["_fingerprint"] = digest(self.components())
        return self.__dict__["_fingerprint"]

    def folder(self) -> Path:
        return Path(self.workspace) / self.stage / f"{self.run_name()}-{self.fingerprint()}"

    # ----- Luigi protocol -------------------------------------------------
    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(str(self.folder() / MANIFEST))

    def complete(self) -> bool:
        # A manifest read, nothing hashed: a no-op rerun stays fast. A damaged manifest is not
        # complete, so Luigi calls run(), which names it instead of silently redoing the task.
        try:
            manifest = integrity.read_sealed(self.folder())
        except IntegrityError:
            return False
        return manifest is not None and manifest.get("fingerprint") == self.fingerprint()

    def manifest(self) -> dict[str, Any]:
        """The completed manifest of this task (run it first), its seal checked."""
        manifest = integrity.read_sealed(self.folder())
        if manifest is None:
            raise TfpipeError(f"{self.task_id} has no manifest in {self.folder()}; run it first")
        return manifest

    def run(self) -> None:
        try:
            self._run()
        except TfpipeError:
            report_final(self)  # a user error fails the same way on a retry
            raise

    def _run(self) -> None:
        folder = self.folder()
        self.verify_upstream()  # before anything is created: a refused task leaves no trace
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TfpipeError(
                f"cannot create {folder}: {exc.strerror}. Point TFPIPE_WORKSPACE (or "
                "--workspace) at a writable folder."
            ) from exc
        with output_lock(folder):
            if self.complete():
                logger.info("%s was completed by another run meanwhile; reusing it", self.task_id)
                return
            integrity.read_sealed(folder)  # a damaged manifest here: say so, never redo it silently
            started = time.time()
            attempts = _record_attempt(folder, started)
            record = self.produce(folder) or {}
            finished = time.time()
            manifest = integrity.write_manifest(
                folder,
                {
                    "task": self.get_task_family(),
                    "task_id": self.task_id,
                    "stage": self.stage,
                    "fingerprint": self.fingerprint(),
                    "components": self.components(),
                    "run_params": recursively_unfreeze(dict(self.param_kwargs)),
                    "record": record,
                    "versions": library_versions(),
                    "host": socket.gethostname(),
                    "pid": os.getpid(),
                    "started": _iso(started),
                    "finished": _iso(finished),
                    "duration_s": round(finished - started, 3),
                    "attempts": attempts,
                    "files": integrity.file_list(folder, self.hash_cache()),
                },
            )
            manifest_index.record(folder, self.run_name(), manifest)  # explain reads this, not every manifest

    def verify_upstream(self) -> None:
        """Every upstream folder still holds what its manifest lists (hashes cached by stat),
        checked here in the Luigi process before this task's own process starts."""
        cache = self.hash_cache()
        for task in self.all_upstream():
            integrity.verify(task.folder(), cache)

    def produce(self, folder: Path) -> dict[str, Any] | None:
        raise NotImplementedError

    def on_failure(self, exception: BaseException) -> str:
        # The scheduler shows this text; a TfpipeError already says what to do.
        if isinstance(exception, TfpipeError):
            return f"{type(self).__name__} failed: {exception}"
        return super().on_failure(exception)


class StageTask(PipelineTask):
    """A task whose work runs in its own process (tasks.protocol.run_stage), where its executor
    plugin says: `local` (a child of this process) or e.g. `slurm` (a Slurm job). Where it runs is
    never what it computes: not fingerprinted, not in the task id."""

    executor = luigi.Parameter(default="local", significant=False,
                               description="tfpipe.executors plugin that runs the stage's process: local or slurm")
    # May hold `stages: {train: {...}}`: options for one stage over the others (tasks/protocol.py).
    executor_options = luigi.DictParameter(default={}, significant=False,
                                           description="options of the executor (partition, time, gpus, ...)")


def report_final(task: luigi.Task) -> None:
    """Tell the scheduler that the failure this running task is about to report is final.

    Luigi's worker sends the task's retry policy along with the FAILED status, but the
    scheduler applies that policy only after it has counted the failure (luigi/scheduler.py,
    Scheduler.add_task), so it must arrive first: as a RUNNING update with retry_count 1, the
    failure then disables the task at once. The scheduler is reached through the status
    reporter Luigi binds to a running task's set_status_message (also from a forked task
    process under luigid, over its RPC).
    """
    reporter = getattr(getattr(task, "set_status_message", None), "__self__", None)
    scheduler = getattr(reporter, "_scheduler", None)
    if scheduler is None:
        return  # not run by a Luigi worker
    try:
        scheduler.add_task(worker=reporter._worker_id, task_id=task.task_id, status=luigi.task_status.RUNNING,
                           resources=task.process_resources(), accepts_messages=task.accepts_messages,
                           retry_policy_dict={"retry_count": 1})
    except Exception:  # noqa: BLE001  scheduler unreachable: luigi's own retry policy applies
        logger.warning("could not tell the scheduler not to retry %s", task.task_id, exc_info=True)


def _record_attempt(folder: Path, started: float) -> int:
    """Append this process to the folder's attempts log (under the output lock); return the count:
    the task's own count of how often it ran, kept across crashes and resumes."""
    path = folder / ATTEMPTS
    line = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": _iso(started),
                       "started_ts": started})
    with atomic.writing(path), open(path, "a", encoding="utf-8") as handle:
        handle.write(line + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    with open(path, encoding="utf-8") as handle:
        return sum(1 for text in handle if text.strip())


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")
