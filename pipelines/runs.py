"""Top-level runs users name on the command line: ImageRun, TextRun, FullRun, ScheduledRun,
LinearRegression, GraphSpeedup.

A run task turns the command line and YAML config into explicit typed
parameters of the stage tasks (the only place config is resolved), then
writes a summary of what its upstream produced.
"""
from __future__ import annotations

import datetime
import json
import logging
import time
from pathlib import Path
from typing import Any

import luigi
from luigi.freezing import recursively_unfreeze
from luigi.task import flatten

from pipelines import config as cfg
from pipelines.report import render_html, task_records
from pipelines.summary import (
    graph_summary,
    image_summary,
    linreg_summary,
    render_markdown,
    text_summary,
)
from plugins import registry
from plugins.errors import TfpipeError
from tasks import atomic
from tasks.base import PipelineTask
from tasks.basics.graph_speedup import TimeGraphSpeedup
from tasks.basics.linreg import FitLinearRegression
from tasks.image.evaluate import EvaluateImageModel
from tasks.text.data import corpus_label
from tasks.text.evaluate import EvaluateTextModel
from tasks.text.generate import GenerateText
from tasks.text.prep import check_temperatures

logger = logging.getLogger(__name__)


class RunTask(PipelineTask):
    """A top-level run: its parameters only choose upstream tasks; it writes a summary."""

    stage = "runs"
    config = luigi.OptionalParameter(default=None, description="YAML file overriding the defaults")
    workspace = luigi.OptionalParameter(default=None, significant=False,
                                        description="artefact root (default: $TFPIPE_WORKSPACE or ./workspace)")

    def root(self) -> str:
        return self.workspace or cfg.workspace_root()

    def folder(self) -> Path:
        return Path(self.root()) / self.stage / f"{self.run_name()}-{self.fingerprint()}"

    def significant_params(self) -> dict[str, Any]:
        return {}  # identity comes from the upstream fingerprints alone

    def resolved_config(self) -> cfg.Config:
        if "_config" not in self.__dict__:
            self.__dict__["_config"] = cfg.resolve(self.config)
        return self.__dict__["_config"]

    def merged_config(self) -> cfg.Config | None:
        """Files plus command line, once requires() has resolved them."""
        return self.__dict__.get("_merged")

    def config_origins(self):
        """Lookup: stage parameter name -> where its value was set (for `explain`)."""
        configs = [run.merged_config() for run in [self, *flatten(self.requires())]
                   if isinstance(run, RunTask) and run.merged_config() is not None]

        def origin_of(param: str) -> str | None:
            for config in configs:
                for key, where in config.origins.items():
                    if key.split(".", 1)[1] == param or (param == "model_params" and key.startswith("models.")):
                        return f"{key} at {where}"
            return None

        return origin_of

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
        logger.info("results of %s (also in %s):\n%s", self.get_task_family(), folder / "summary.md", text)
        return {"summary": str(folder / "summary.md"), "report": str(folder / "report.html"),
                **self.write_extras(folder, summary)}

    def write_extras(self, folder: Path, summary: dict[str, Any]) -> dict[str, Any]:
        """Hook for files beyond the summary and report; returns what to add to the record."""
        return {}

    def report_config(self) -> dict[str, Any]:
        """What the report shows as the configuration: this run's parameters and the resolved YAML."""
        given = {key: value for key, value in self.param_kwargs.items() if value is not None}
        return {"parameters": json.loads(json.dumps(recursively_unfreeze(given), default=str)),
                "config_files": self.resolved_config().values}


@RunTask.event_handler(luigi.Event.DEPENDENCY_PRESENT)
def _show_existing_results(task: luigi.Task) -> None:
    """A rerun with nothing to do still tells the user where the results are."""
    if isinstance(task, RunTask):
        logger.info("%s is complete; results: %s (report: %s)", task.get_task_family(), task.folder() / "summary.md",
                    task.folder() / "report.html")


class TrainingRun(RunTask):
    """A run that trains: the device policy comes from the command line or the ``device`` section."""

    device = luigi.OptionalParameter(default=None, significant=False,
                                     description="device policies, e.g. mirrored or gpu,memory_growth")
    device_options = luigi.OptionalDictParameter(default=None, significant=False,
                                                 description='e.g. \'{"ids": [1], "fallback": "cpu"}\'')

    def device_params(self, config: cfg.Config) -> dict[str, Any]:
        device, options = cfg.device_policy(config, self.device, self.device_options)
        return {"device": device, "device_options": options}


class ImageRun(TrainingRun):
    """Image path for one dataset and model: download -> preprocess -> train -> evaluate.

    Every parameter left unset comes from the config (``image`` section).
    """

    dataset = luigi.OptionalParameter(default=None, description="a tfpipe.datasets plugin: mnist, "
                                      "fashion_mnist, cifar10, image_folder, arrays, ...")
    dataset_options = luigi.OptionalDictParameter(default=None,
                                                  description='e.g. \'{"path": "/data/flowers"}\'')
    model = luigi.OptionalParameter(default=None, description="a tfpipe.models plugin: mlp, cnn, ...")
    steps = luigi.OptionalIntParameter(default=None)
    batch_size = luigi.OptionalIntParameter(default=None)
    learning_rate = luigi.OptionalFloatParameter(default=None)
    lr_schedule = luigi.OptionalParameter(default=None, description="constant or cosine")
    checkpoint_every = luigi.OptionalIntParameter(default=None)
    seed = luigi.OptionalIntParameter(default=None)
    validation_fraction = luigi.OptionalFloatParameter(default=None,
                                                       description="share of training samples held out")
    split_seed = luigi.OptionalIntParameter(default=None)
    deterministic = luigi.OptionalBoolParameter(default=None)
    model_params = luigi.OptionalDictParameter(default=None, description='e.g. \'{"hidden_units": 200}\'')
    mirror = luigi.OptionalParameter(default=None, description="data mirror root (default: $TFPIPE_DATA_MIRROR)")

    def run_name(self) -> str:
        evaluate = self.requires()
        return f"image-{evaluate.dataset_label()}-{evaluate.model}"

    def requires(self) -> EvaluateImageModel:
        if "_evaluate" in self.__dict__:
            return self.__dict__["_evaluate"]
        overrides = {key: recursively_unfreeze(getattr(self, key)) for key in cfg.SCHEMA["image"]}
        config = cfg.apply_overrides(self.resolved_config(), "image", overrides)
        self.__dict__["_merged"] = config
        image = config.values["image"]
        try:
            registry.MODELS.get(image["model"], "image_classifier")
        except registry.PluginError as exc:
            raise TfpipeError(f"{config.origins.get('image.model', 'image.model')}: {exc}") from exc
        params = {**config.model_params(image["model"]), **dict(self.model_params or {})}
        task = EvaluateImageModel(
            workspace=self.root(),
            **self.device_params(config),
            mirror=self.mirror or cfg.data_mirror(config),
            model_params=params,
            **{key: image[key] for key in cfg.SCHEMA["image"]},
        )
        task.requires().requires().check_settings(image["batch_size"])  # before anything runs
        self.__dict__["_evaluate"] = task
        return task

    def summary(self) -> dict[str, Any]:
        return {"runs": [image_summary(self.requires())]}


class TextRun(TrainingRun):
    """Text path for one corpus and model: download -> preprocess -> train -> evaluate and
    generate. Every parameter left unset comes from the config (``text`` section)."""

    corpus = luigi.OptionalParameter(default=None, description="nietzsche, a UTF-8 text file, or a URL")
    model = luigi.OptionalParameter(default=None, description="a character model plugin: lstm, gru, ...")
    lowercase = luigi.OptionalBoolParameter(default=None)
    holdout = luigi.OptionalFloatParameter(default=None)
    window = luigi.OptionalIntParameter(default=None)
    steps = luigi.OptionalIntParameter(default=None)
    batch_size = luigi.OptionalIntParameter(default=None)
    learning_rate = luigi.OptionalFloatParameter(default=None)
    checkpoint_every = luigi.OptionalIntParameter(default=None)
    seed = luigi.OptionalIntParameter(default=None)
    deterministic = luigi.OptionalBoolParameter(default=None)
    temperatures = luigi.OptionalListParameter(default=None, description="e.g. '[0.5, 1.0]'")
    length = luigi.OptionalIntParameter(default=None)
    sample_seed = luigi.OptionalIntParameter(default=None)
    seed_length = luigi.OptionalIntParameter(default=None)
    model_params = luigi.OptionalDictParameter(default=None, description='e.g. \'{"units": 128}\'')
    mirror = luigi.OptionalParameter(default=None, description="data mirror root (default: $TFPIPE_DATA_MIRROR)")

    GENERATION = ("temperatures", "length", "sample_seed", "seed_length")

    def run_name(self) -> str:
        evaluate = self.requires()["evaluate"]
        return f"text-{corpus_label(evaluate.corpus)}-{evaluate.model}"

    def requires(self) -> dict[str, PipelineTask]:
        if "_tasks" in self.__dict__:
            return self.__dict__["_tasks"]
        overrides = {key: getattr(self, key) for key in cfg.SCHEMA["text"]}
        config = cfg.apply_overrides(self.resolved_config(), "text", overrides)
        self.__dict__["_merged"] = config
        text = config.values["text"]
        try:
            registry.MODELS.get(text["model"], "char_language_model")
        except registry.PluginError as exc:
            raise TfpipeError(f"{config.origins.get('text.model', 'text.model')}: {exc}") from exc
        # Checked before anything trains: a bad temperature must not cost a training run.
        temperatures = check_temperatures(text["temperatures"],
                                          config.origins.get("text.temperatures", "text.temperatures"))
        params = {**config.model_params(text["model"]), **dict(self.model_params or {})}
        common = {key: text[key] for key in cfg.SCHEMA["text"] if key not in self.GENERATION}
        common.update(workspace=self.root(), mirror=self.mirror or cfg.data_mirror(config), model_params=params,
                      **self.device_params(config))
        tasks = {
            "evaluate": EvaluateTextModel(**common),
            "generate": GenerateText(**common, temperatures=temperatures,
                                     **{key: text[key] for key in self.GENERATION if key != "temperatures"}),
        }
        self.__dict__["_tasks"] = tasks
        return tasks

    def summary(self) -> dict[str, Any]:
        tasks = self.requires()
        return {"runs": [text_summary(tasks["evaluate"], tasks["generate"])]}


class FullRun(TrainingRun):
    """Everything: the image path and the text path (each from its config section)."""

    mirror = luigi.OptionalParameter(default=None, description="data mirror root (default: $TFPIPE_DATA_MIRROR)")

    def requires(self) -> list[RunTask]:
        shared = {"config": self.config, "workspace": self.workspace, "mirror": self.mirror,
                  "device": self.device, "device_options": self.device_options}
        return [ImageRun(**shared), TextRun(**shared)]

    def summary(self) -> dict[str, Any]:
        runs = []
        for run in flatten(self.requires()):
            runs.extend(run.summary()["runs"])
        return {"runs": runs}


class SlotRun(RunTask):
    """The whole pipeline (FullRun's upstream) for one date, started by a timer.

    Reads what FullRun reads; every fingerprinted result that did not change is
    reused, so a nightly run with no change trains nothing. Writes
    ``runs/scheduled-<slot>-<fingerprint>/``: summary.json/summary.md (the
    dated report) and stages.json (each task, its folder and whether this slot
    produced it or reused it).
    """

    mirror = luigi.OptionalParameter(default=None, description="data mirror root (default: $TFPIPE_DATA_MIRROR)")

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
