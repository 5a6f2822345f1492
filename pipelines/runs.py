"""Top-level runs users name on the command line: ImageRun, FullRun, LinearRegression, GraphSpeedup.

A run task turns the command line and YAML config into explicit typed
parameters of the stage tasks (the only place config is resolved), then
writes a summary of what its upstream produced.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import luigi
from luigi.freezing import recursively_unfreeze
from luigi.task import flatten

from pipelines import config as cfg
from pipelines.report import render_html, task_records
from pipelines.summary import graph_summary, image_summary, linreg_summary, render_markdown
from plugins import registry
from tasks import atomic
from tasks.base import PipelineTask
from tasks.errors import TfpipeError
from tasks.evaluate import EvaluateImageModel
from tasks.graph_speedup import TimeGraphSpeedup
from tasks.linreg import FitLinearRegression

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

    def summary(self) -> dict[str, Any]:
        raise NotImplementedError

    def produce(self, folder: Path) -> dict[str, Any]:
        summary = self.summary()
        summary.setdefault("run", {"task": self.task_id, "folder": str(folder)})
        summary.setdefault("config", self.report_config())
        summary.setdefault("tasks", task_records(self))
        atomic.write_json(folder / "summary.json", summary)
        text = render_markdown(summary)
        atomic.write_text(folder / "summary.md", text)
        atomic.write_text(folder / "report.html", render_html(summary))
        logger.info("results of %s (also in %s):\n%s", self.get_task_family(), folder / "summary.md", text)
        return {"summary": str(folder / "summary.md"), "report": str(folder / "report.html")}

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


class ImageRun(RunTask):
    """Image path for one dataset and model: download -> preprocess -> train -> evaluate.

    Every parameter left unset comes from the config (``image`` section).
    """

    dataset = luigi.OptionalParameter(default=None, description="mnist, fashion_mnist or your own")
    model = luigi.OptionalParameter(default=None, description="a tfpipe.models plugin: mlp, cnn, ...")
    steps = luigi.OptionalIntParameter(default=None)
    batch_size = luigi.OptionalIntParameter(default=None)
    learning_rate = luigi.OptionalFloatParameter(default=None)
    checkpoint_every = luigi.OptionalIntParameter(default=None)
    seed = luigi.OptionalIntParameter(default=None)
    validation_size = luigi.OptionalIntParameter(default=None)
    split_seed = luigi.OptionalIntParameter(default=None)
    deterministic = luigi.OptionalBoolParameter(default=None)
    model_params = luigi.OptionalDictParameter(default=None, description='e.g. \'{"hidden_units": 200}\'')
    mirror = luigi.OptionalParameter(default=None, description="data mirror root (default: $TFPIPE_DATA_MIRROR)")

    def run_name(self) -> str:
        evaluate = self.requires()
        return f"image-{evaluate.dataset}-{evaluate.model}"

    def requires(self) -> EvaluateImageModel:
        if "_evaluate" in self.__dict__:
            return self.__dict__["_evaluate"]
        overrides = {key: getattr(self, key) for key in cfg.SCHEMA["image"]}
        config = cfg.apply_overrides(self.resolved_config(), "image", overrides)
        image = config.values["image"]
        try:
            registry.get("models", image["model"])
        except registry.PluginError as exc:
            raise TfpipeError(f"{config.origins.get('image.model', 'image.model')}: {exc}") from exc
        params = {**config.model_params(image["model"]), **dict(self.model_params or {})}
        task = EvaluateImageModel(
            workspace=self.root(),
            mirror=self.mirror or cfg.data_mirror(config),
            model_params=params,
            **{key: image[key] for key in cfg.SCHEMA["image"]},
        )
        self.__dict__["_evaluate"] = task
        return task

    def summary(self) -> dict[str, Any]:
        return {"runs": [image_summary(self.requires())]}


class FullRun(RunTask):
    """Everything: the image path (dataset and model from the config's ``image`` section)."""

    mirror = luigi.OptionalParameter(default=None, description="data mirror root (default: $TFPIPE_DATA_MIRROR)")

    def requires(self) -> list[ImageRun]:
        return [ImageRun(config=self.config, workspace=self.workspace, mirror=self.mirror)]

    def summary(self) -> dict[str, Any]:
        runs = []
        for run in flatten(self.requires()):
            runs.extend(run.summary()["runs"])
        return {"runs": runs}


class LinearRegression(RunTask):
    """y = a*x + b by gradient descent, numpy by hand vs tf.GradientTape + SGD (tasks.linreg)."""

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
    """Eager vs tf.function call times of a shallow and a deep Dense model (tasks.graph_speedup)."""

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
