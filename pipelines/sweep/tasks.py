"""Sweep: many ImageRun/TextRun trials as one Luigi run, and one report comparing them.

Luigi never runs a task whose dependency failed, so a Sweep cannot require its trials' runs
directly: one diverging trial would stop the report. Each trial is a SweepTrial instead:

- it requires the trial's data tasks (download, preprocess), so Luigi schedules them and a
  task several trials share runs once;
- its run() runs the rest of the trial's ordinary ImageRun/TextRun graph (train, evaluate,
  the run's own report) in its worker, upstream first, exactly as Luigi would, and records
  the outcome: ok, or failed with the reason. The Sweep requires only SweepTrials, which
  succeed either way, and reports the failed trials as failed.

A user error (TfpipeError: diverged, bad setting) is the trial's final result. A crash (a
stage process killed, out of memory), a full disk or a damaged upstream folder is reported,
and the next run of the sweep retries it (resuming from its checkpoints). The trial's tasks
are the same tasks, with the same fingerprints, as the ImageRun a user would start:
``ImageRun --config best.yaml`` retrains nothing, and a trial an earlier sweep or run
completed is not run again.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import luigi
from luigi.freezing import recursively_unfreeze

from pipelines.config import ConfigError
from pipelines.report import INVOCATION_STARTED
from pipelines.run_task import RunTask, TrainingRun, walk
from pipelines.runs import ImageRun, TextRun
from pipelines.sweep import GRID_LIMIT
from plugins.errors import TfpipeError
from tasks import integrity
from tasks.atomic import DiskFull
from tasks.base import MANIFEST, PipelineTask
from tasks.integrity import IntegrityError
from tasks.model_task import TrainingTask

if TYPE_CHECKING:
    from pipelines.sweep.spec import SweepSpec

logger = logging.getLogger(__name__)
RUNS = {"image": ImageRun, "text": TextRun}


def describe(values: dict[str, Any]) -> str:
    """'image.learning_rate=0.003 image.model=cnn'."""
    return " ".join(f"{path}={value}" for path, value in values.items())


class SweepTrial(PipelineTask):
    """One trial of a sweep: the trial's data tasks through Luigi, the rest of its run here."""

    stage = "trials"
    config = luigi.Parameter(description="the sweep file")
    path = luigi.ChoiceParameter(choices=list(RUNS))
    values = luigi.DictParameter(description="{setting path: value} of this trial")
    origins = luigi.DictParameter(description="{setting path: file:line of the sweep file}")

    def trial_run(self) -> TrainingRun:
        if "_trial_run" not in self.__dict__:
            trial = {"values": recursively_unfreeze(self.values), "origins": recursively_unfreeze(self.origins)}
            self.__dict__["_trial_run"] = RUNS[self.path](config=self.config, workspace=self.workspace,
                                                     sweep_trial=trial)
        return self.__dict__["_trial_run"]

    def run_name(self) -> str:
        return self.trial_run().run_name()

    def label(self) -> str:
        return f"{super().label()} {describe(recursively_unfreeze(self.values))}"

    def requires(self) -> list[PipelineTask]:
        """The data tasks the trial's training reads: shared by trials, scheduled by Luigi."""
        if "_shared" not in self.__dict__:  # walked once: a no-op rerun asks for it several times
            shared: dict[str, PipelineTask] = {}
            for task in walk(self.trial_run()):
                if isinstance(task, TrainingTask):
                    shared.update((upstream.task_id, upstream) for upstream in task.upstream())
            self.__dict__["_shared"] = list(shared.values())
        return self.__dict__["_shared"]

    def explained_upstream(self) -> list[PipelineTask]:
        """For explain: the trial's whole run, which this task runs (pipelines/explain.py)."""
        return [self.trial_run()]

    def process_resources(self) -> dict[str, int]:
        """The GPUs the trial's training asks for ([resources] gpu), held while this runs."""
        resources: dict[str, int] = {}
        for task in walk(self.trial_run()):
            for name, amount in task.process_resources().items():
                resources[name] = max(resources.get(name, 0), amount)
        return resources

    def fingerprint_components(self) -> dict[str, Any]:
        components = super().fingerprint_components()
        components["params"] = {}  # the run's fingerprint already says what the trial computes
        run = self.trial_run()
        components["upstream"] = {run.label(): run.fingerprint()}
        return components

    def complete(self) -> bool:
        try:
            manifest = integrity.read_sealed(self.folder())
        except IntegrityError:
            return False
        if manifest is None or manifest.get("fingerprint") != self.fingerprint():
            return False
        # A crash is reported in this invocation and retried by the next one.
        return (manifest.get("record") or {}).get("final", True) or _written_now(self.folder())

    def pending(self) -> list[PipelineTask]:
        """The trial's incomplete tasks, each after everything it depends on."""
        order: dict[str, PipelineTask] = {}

        def visit(task: PipelineTask) -> None:
            if task.task_id in order or task.complete():
                return
            for upstream in task.upstream():
                visit(upstream)
            order[task.task_id] = task

        visit(self.trial_run())
        return list(order.values())

    def produce(self, folder: Path) -> dict[str, Any]:
        run, started = self.trial_run(), time.time()
        record: dict[str, Any] = {"status": "ok", "error": None, "final": True, "run": str(run.folder()),
                                  "values": recursively_unfreeze(self.values)}
        try:
            for task in self.pending():
                self._report_through_me(task)
                task.run()
        except (DiskFull, IntegrityError) as exc:  # the machine's problem, not the trial's: retried
            record.update(status="failed", error=" ".join(str(exc).split()), final=False)
        except TfpipeError as exc:  # diverged, or a setting this trial's data cannot take
            record.update(status="failed", error=" ".join(str(exc).split()))
        except Exception as exc:  # noqa: BLE001  a crash: reported now, retried by the next run
            record.update(status="failed", error=f"{type(exc).__name__}: {' '.join(str(exc).split())}",
                          final=False)
            logger.exception("trial %s crashed; the next run of the sweep retries it", self.label())
        if record["status"] != "ok":
            logger.warning("trial %s failed: %s", self.label(), record["error"])
        record["seconds"] = round(time.time() - started, 3)
        return record


    def _report_through_me(self, task: PipelineTask) -> None:
        """The trial's task tells its progress through this task's worker (Luigi binds these
        callbacks only to the task it runs; a stage process calls them)."""
        for name in ("set_status_message", "set_progress_percentage", "set_tracking_url"):
            own = getattr(self, name, None)
            setattr(task, name, own if callable(own) else (lambda *args: None))
        task.set_status_message(f"{self.label()}: running {task.label()}")


def _written_now(folder: Path) -> bool:
    try:
        return (folder / MANIFEST).stat().st_mtime >= INVOCATION_STARTED
    except OSError:
        return False


class Sweep(RunTask):
    """Many ImageRun/TextRun configurations from the ``sweep:`` section of --config, compared in
    one report (report.html, best.yaml in the run folder). See README, Sweeps."""

    config = luigi.OptionalParameter(default=None,
                                     description="a config file with a sweep: section (README, Sweeps)")
    yes = luigi.BoolParameter(significant=False,
                              description=f"run a grid of more than {GRID_LIMIT} trials")

    def spec(self) -> SweepSpec:
        if "_spec" not in self.__dict__:
            if not self.config:  # optional only so that forgetting it is one line, not a traceback
                raise ConfigError("Sweep needs --config FILE: a config with a sweep: section (README, Sweeps)")
            from pipelines.sweep import spec as sweep_spec  # imports PyYAML: only for a sweep

            self.__dict__["_spec"] = sweep_spec.load(self.config)
        return self.__dict__["_spec"]

    def run_name(self) -> str:
        return f"sweep-{Path(self.spec().file).stem}"

    def requires(self) -> list[SweepTrial]:
        if "_trials" in self.__dict__:
            return self.__dict__["_trials"]
        spec = self.spec()
        trials = spec.trials()
        if spec.method == "grid" and len(trials) > GRID_LIMIT and not self.yes:
            raise ConfigError(f"{spec.where['parameters']}: this grid has {len(trials)} trials, more than "
                              f"{GRID_LIMIT}; pass --yes to run them all, or sweep fewer values")
        origins = {parameter.path: parameter.where for parameter in spec.parameters}
        tasks = [SweepTrial(config=self.config, path=spec.path, values=values, workspace=self.root(),
                            origins={path: origins[path] for path in values}) for values in trials]
        for task in tasks:  # every trial's settings checked before anything of any trial runs
            task.trial_run().requires()
        self.__dict__["_trials"] = tasks
        return tasks

    def fingerprint_components(self) -> dict[str, Any]:
        components = super().fingerprint_components()
        spec = self.spec()
        components["params"] = {"metric": spec.metric, "goal": spec.goal}  # what the report ranks by
        return components

    def complete(self) -> bool:
        if not super().complete():
            return False
        retry = (self.manifest().get("record") or {}).get("retry") or []
        return not retry or _written_now(self.folder())

    def report_path(self) -> Path:
        return (self.folder() / "report.html").resolve()

    def produce(self, folder: Path) -> dict[str, Any]:
        from pipelines.sweep.report import write_report

        return write_report(self, folder)
