"""Top-level runs users name on the command line: ImageRun, TextRun, FullRun, ScheduledRun,
LinearRegression, GraphSpeedup.

A run task turns the command line and YAML config into explicit typed
parameters of the stage tasks (the only place config is resolved), then
writes a summary of what its upstream produced. Its settings parameters are
generated from pipelines/settings.py (pipelines.params.from_settings).
"""
from __future__ import annotations

import datetime
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import luigi
from luigi.freezing import recursively_unfreeze
from luigi.task import flatten

from pipelines import config as cfg
from pipelines import plugin_checks
from pipelines.params import from_settings
from pipelines.report import render_html, task_records
from pipelines.settings import SETTINGS
from pipelines.summary import (
    graph_summary,
    image_summary,
    linreg_summary,
    render_markdown,
    text_summary,
)
from plugins.datasets.api import IMAGE
from plugins.errors import TfpipeError
from tasks import atomic
from tasks.base import PipelineTask
from tasks.basics.graph_speedup import TimeGraphSpeedup
from tasks.basics.linreg import FitLinearRegression
from tasks.image.evaluate import EvaluateImageModel
from tasks.text.download import corpus_label
from tasks.text.evaluate import EvaluateTextModel
from tasks.text.generate import GenerateText

logger = logging.getLogger(__name__)


class RunTask(PipelineTask):
    """A top-level run: its parameters only choose upstream tasks; it writes a summary."""

    stage = "runs"
    # Luigi parameter -> setting path (or free-form section); filled by @from_settings.
    setting_params: ClassVar[dict[str, str]] = {}
    config = luigi.OptionalParameter(default=None, description="YAML file overriding the defaults "
                                     "(`tfpipe defaults` prints them all)")
    workspace = luigi.OptionalParameter(default=None, significant=False,
                                        description="artefact root (default: $TFPIPE_WORKSPACE or "
                                                    "./workspace)")

    def root(self) -> str:
        return self.workspace or cfg.workspace_root()

    def folder(self) -> Path:
        return Path(self.root()) / self.stage / f"{self.run_name()}-{self.fingerprint()}"

    def significant_params(self) -> dict[str, Any]:
        return {}  # identity comes from the upstream fingerprints alone

    def resolved_config(self) -> cfg.Config:
        """The defaults and the --config file."""
        if "_config" not in self.__dict__:
            self.__dict__["_config"] = cfg.resolve(self.config)
        return self.__dict__["_config"]

    def merged_config(self) -> cfg.Config:
        """Defaults, --config file and this run's command-line values, validated (once).
        requires() adds the free-form entries (model_params, ...) it resolves."""
        if "_merged" not in self.__dict__:
            given = {path: getattr(self, param) for param, path in self.setting_params.items()
                     if path in SETTINGS}
            self.__dict__["_merged"] = cfg.apply_command_line(self.resolved_config(), given)
        return self.__dict__["_merged"]

    def param_paths(self) -> dict[str, str]:
        """Stage-task parameter (dotted inside dicts: model_params.units) -> the config path that
        set it, for the stage tasks this run builds."""
        self.requires()
        return self.__dict__.get("_param_paths", {})

    def origin_of(self, param: str) -> str | None:
        """'text.learning_rate at command line --learning-rate' for a stage-task parameter."""
        path = self.param_paths().get(param)
        return self.merged_config().set_by(path) if path else None

    def summary(self) -> dict[str, Any]:
        raise NotImplementedError

    def produce(self, folder: Path) -> dict[str, Any]:
        summary = self.summary()
        summary.setdefault("run", {"task": self.label(), "folder": str(folder)})
        summary.setdefault("config", self.report_config())
        summary.setdefault("tasks", task_records(self))
        atomic.write_json(folder / "summary.json", summary)
        text = render_markdown(summary)
        atomic.write_text(folder / "summary.md", text)
        atomic.write_text(folder / "report.html", render_html(summary))
        logger.info("results of %s (also in %s):\n%s", self.get_task_family(),
                    folder / "summary.md", text)
        logger.info("report: %s", (folder / "report.html").resolve())
        return {"summary": str(folder / "summary.md"), "report": str(folder / "report.html"),
                **self.write_extras(folder, summary)}

    def report_path(self) -> Path:
        return (self.folder() / "report.html").resolve()

    def write_extras(self, folder: Path, summary: dict[str, Any]) -> dict[str, Any]:
        """Hook for files beyond the summary and report; returns what to add to the record."""
        return {}

    def report_config(self) -> dict[str, Any]:
        """What the report shows as the configuration: this run's parameters and the resolved
        YAML (defaults and --config file)."""
        given = {key: value for key, value in self.param_kwargs.items() if value is not None}
        return {"parameters": json.loads(json.dumps(recursively_unfreeze(given), default=str)),
                "config_files": self.resolved_config().values}


@RunTask.event_handler(luigi.Event.DEPENDENCY_PRESENT)
def _show_existing_results(task: luigi.Task) -> None:
    """A rerun with nothing to do still tells the user where the results are."""
    if isinstance(task, RunTask):
        logger.info("%s is complete; results: %s (report: %s)", task.get_task_family(),
                    task.folder() / "summary.md", task.folder() / "report.html")


def _entry_paths(param: str, entry: str, options: dict[str, Any]) -> dict[str, str]:
    return {f"{param}.{key}": f"{entry}.{key}" for key in options}


def _walk(task: luigi.Task) -> Iterator[luigi.Task]:
    yield task
    for upstream in flatten(task.requires()):
        yield from _walk(upstream)


@from_settings("device.policy", "device.options")
class TrainingRun(RunTask):
    """A run that trains: the device policy comes from the command line or the ``device``
    section."""

    def device_params(self) -> dict[str, Any]:
        device, options = cfg.device_policy(self.resolved_config(), self.device,
                                            self.device_options)
        return {"device": device, "device_options": options}


@from_settings("data.mirror", path="image")
class ImageRun(TrainingRun):
    """Image path for one dataset and model: download -> preprocess -> train -> evaluate.

    Every parameter left unset comes from the config (``image`` section).
    """

    def run_name(self) -> str:
        evaluate = self.requires()
        return f"image-{evaluate.dataset_label()}-{evaluate.model}"

    def requires(self) -> EvaluateImageModel:
        if "_evaluate" in self.__dict__:
            return self.__dict__["_evaluate"]
        config = self.merged_config()
        image = config.values["image"]
        model, dataset, mirror = image["model"], image["dataset"], cfg.data_mirror(config)
        model_info = plugin_checks.check_model(model, "image_classifier",
                                               config.where("image.model"))
        data_info = plugin_checks.check_dataset(dataset, IMAGE, config.where("image.dataset"))
        config = cfg.apply_entry(config, "models", model, self.model_params, "--model-params")
        config = cfg.apply_entry(config, "datasets", dataset, self.dataset_options,
                                 "--dataset-options")
        self.__dict__["_merged"] = config
        model_params = config.entry("models", model)
        dataset_options = config.entry("datasets", dataset)
        plugin_checks.check_options(model_info, model_params, f"models.{model}", config,
                                    "hyper-parameter")
        plugin_checks.check_options(data_info, dataset_options, f"datasets.{dataset}", config,
                                    "option")
        self.__dict__["_param_paths"] = {
            **{key: f"image.{key}" for key in image},
            **_entry_paths("model_params", f"models.{model}", model_params),
            **_entry_paths("dataset_options", f"datasets.{dataset}", dataset_options),
        }
        task = EvaluateImageModel(workspace=self.root(), mirror=mirror, **self.device_params(),
                                  model_params=model_params, dataset_options=dataset_options,
                                  **image)
        _check_data_settings(task, config)
        self.__dict__["_evaluate"] = task
        return task

    def summary(self) -> dict[str, Any]:
        return {"runs": [image_summary(self.requires())]}


def _check_data_settings(root: luigi.Task, config: cfg.Config) -> None:
    """Settings that must fit the data (validation_fraction, batch_size vs sample counts) are
    checked by the preprocessing task, before any training is scheduled."""
    for task in _walk(root):
        check = getattr(task, "check_settings", None)
        if callable(check):
            try:
                check(config.get("image", "batch_size"))
            except TfpipeError as exc:
                where = "; ".join(config.set_by(path) or path
                                  for path in ("image.validation_fraction", "image.batch_size"))
                raise cfg.ConfigError(f"{where}: {exc}") from exc
            return


@from_settings("data.mirror", path="text")
class TextRun(TrainingRun):
    """Text path for one corpus and model: download -> preprocess -> train -> evaluate and
    generate. Every parameter left unset comes from the config (``text`` section)."""

    GENERATION = ("temperatures", "length", "sample_seed", "seed_length")

    def run_name(self) -> str:
        evaluate = self.requires()["evaluate"]
        return f"text-{corpus_label(evaluate.corpus, evaluate.corpus_options)}-{evaluate.model}"

    def requires(self) -> dict[str, PipelineTask]:
        if "_tasks" in self.__dict__:
            return self.__dict__["_tasks"]
        config = self.merged_config()
        text = dict(config.values["text"])
        model, mirror = text["model"], cfg.data_mirror(config)
        model_info = plugin_checks.check_model(model, "char_language_model",
                                               config.where("text.model"))
        corpus, path_option, data_info = plugin_checks.resolve_corpus(
            text["corpus"], mirror, config.where("text.corpus"))
        config = cfg.apply_entry(config, "models", model, self.model_params, "--model-params")
        config = cfg.apply_entry(config, "datasets", corpus, self.corpus_options,
                                 "--corpus-options")
        self.__dict__["_merged"] = config
        model_params = config.entry("models", model)
        corpus_options = config.entry("datasets", corpus)
        plugin_checks.check_options(model_info, model_params, f"models.{model}", config,
                                    "hyper-parameter")
        plugin_checks.check_options(data_info, corpus_options, f"datasets.{corpus}", config,
                                    "option")
        paths = {key: f"text.{key}" for key in text}
        paths.update(_entry_paths("model_params", f"models.{model}", model_params))
        paths.update(_entry_paths("corpus_options", f"datasets.{corpus}", corpus_options))
        if path_option is not None:  # --corpus FILE: the path option comes from text.corpus
            corpus_options["path"] = path_option
            paths["corpus_options.path"] = "text.corpus"
        self.__dict__["_param_paths"] = paths
        text["corpus"] = corpus
        common = {key: value for key, value in text.items() if key not in self.GENERATION}
        common.update(workspace=self.root(), mirror=mirror, model_params=model_params,
                      corpus_options=corpus_options, **self.device_params())
        tasks = {
            "evaluate": EvaluateTextModel(**common),
            "generate": GenerateText(**common, **{key: text[key] for key in self.GENERATION}),
        }
        self.__dict__["_tasks"] = tasks
        return tasks

    def summary(self) -> dict[str, Any]:
        tasks = self.requires()
        return {"runs": [text_summary(tasks["evaluate"], tasks["generate"])]}


@from_settings("data.mirror")
class FullRun(TrainingRun):
    """Everything: the image path and the text path (each from its config section)."""

    def requires(self) -> list[RunTask]:
        shared = {"config": self.config, "workspace": self.workspace, "mirror": self.mirror,
                  "device": self.device, "device_options": self.device_options}
        runs = [ImageRun(**shared), TextRun(**shared)]
        # Resolve (and so validate) both paths here: a bad image setting must fail before the
        # text path is scheduled, not after it trained.
        for run in runs:
            run.requires()
        return runs

    def summary(self) -> dict[str, Any]:
        runs = []
        for run in flatten(self.requires()):
            runs.extend(run.summary()["runs"])
        return {"runs": runs}


@from_settings("data.mirror")
class SlotRun(RunTask):
    """The whole pipeline (FullRun's upstream) for one date, started by a timer.

    Reads what FullRun reads; every fingerprinted result that did not change is
    reused, so a nightly run with no change trains nothing. Writes
    ``runs/scheduled-<slot>-<fingerprint>/``: summary.json/summary.md (the
    dated report) and stages.json (each task, its folder and whether this slot
    produced it or reused it).
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.scheduled_at = int(time.time())  # results finished before this were reused (1 s resolution)

    def slot(self) -> str:
        raise NotImplementedError

    def run_name(self) -> str:
        return f"scheduled-{self.slot()}"

    def significant_params(self) -> dict[str, Any]:
        return {"slot": self.slot()}  # one report per slot, even when nothing changed

    def full_run(self) -> FullRun:
        return FullRun(config=self.config, workspace=self.workspace, mirror=self.mirror)

    def requires(self) -> list[luigi.Task]:
        return flatten(self.full_run().requires())

    def summary(self) -> dict[str, Any]:
        result = self.full_run().summary()
        tasks = task_records(self, since=self.scheduled_at)
        result["slot"] = self.slot()
        result["tasks"] = tasks
        result["produced"] = [row["task_id"] for row in tasks if row["status"] == "ran"]
        result["reused"] = [row["task_id"] for row in tasks if row["status"] == "reused"]
        return result

    def write_extras(self, folder: Path, summary: dict[str, Any]) -> dict[str, Any]:
        atomic.write_json(folder / "stages.json", summary["tasks"])
        logger.info("%s: produced %d task(s), reused %d", self.task_id, len(summary["produced"]),
                    len(summary["reused"]))
        return {"slot": self.slot()}


class ScheduledRun(SlotRun):
    """SlotRun for one date (``--date 2024-05-01``): the nightly run."""

    date = luigi.DateParameter(default=datetime.date.today(), description="the slot (default: today)")

    def slot(self) -> str:
        return self.date.isoformat()


class ScheduledHourlyRun(SlotRun):
    """SlotRun for one hour (``--date-hour 2024-05-01T03``) for timers firing more than daily."""

    date_hour = luigi.DateHourParameter(default=datetime.datetime.now().replace(minute=0, second=0, microsecond=0),
                                        description="the slot (default: this hour)")

    def slot(self) -> str:
        return self.date_hour.strftime("%Y-%m-%dT%H")


class LinearRegression(RunTask):
    """y = a*x + b by gradient descent, numpy by hand vs tf.GradientTape + SGD (tasks.basics.linreg)."""

    learning_rate = luigi.FloatParameter(default=1e-3)
    steps = luigi.IntParameter(default=10000)
    record_every = luigi.IntParameter(default=2000)
    x = luigi.OptionalListParameter(default=None, description="inputs (default: the years 2013-2017)")
    y = luigi.OptionalListParameter(default=None, description="targets (default: the 2013-2017 prices)")

    def run_name(self) -> str:
        return "linear-regression"

    def requires(self) -> FitLinearRegression:
        data = {key: getattr(self, key) for key in ("x", "y") if getattr(self, key) is not None}
        return FitLinearRegression(workspace=self.root(), learning_rate=self.learning_rate, steps=self.steps,
                                   record_every=self.record_every, **data)

    def summary(self) -> dict[str, Any]:
        return {"runs": [linreg_summary(self.requires())]}


class GraphSpeedup(RunTask):
    """Eager vs tf.function call times of a shallow and a deep Dense model (tasks.basics.graph_speedup)."""

    batch_size = luigi.IntParameter(default=60)
    repeats = luigi.IntParameter(default=100)
    warmup = luigi.IntParameter(default=5)

    def run_name(self) -> str:
        return "graph-speedup"

    def requires(self) -> TimeGraphSpeedup:
        return TimeGraphSpeedup(workspace=self.root(), batch_size=self.batch_size, repeats=self.repeats,
                                warmup=self.warmup)

    def summary(self) -> dict[str, Any]:
        return {"runs": [graph_summary(self.requires())]}
