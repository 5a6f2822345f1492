"""The base of every run users name: it resolves settings into stage parameters and reports.

A run task turns the command line and YAML config into explicit typed
parameters of the stage tasks (the only place config is resolved), then writes
a summary, summary.md and report.html of what its upstream produced. Its
settings parameters are generated from pipelines/settings.py
(pipelines.params.from_settings).
"""
from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import luigi
from luigi.cmdline_parser import CmdlineParser
from luigi.freezing import recursively_unfreeze
from luigi.task import flatten

from pipelines import config as cfg
from pipelines import plugin_checks, server, settings
from pipelines.params import from_settings
from pipelines.report import render_html, task_records
from pipelines.settings import SETTINGS
from pipelines.summary import (
    render_markdown,
)
from tasks import atomic
from tasks.base import PipelineTask

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

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        parser = CmdlineParser.get_instance()
        if parser is not None and parser.known_args.root_task == self.get_task_family():
            server.check_reachable()  # the task a command line runs: is its scheduler there?

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


def entry_paths(param: str, entry: str, options: dict[str, Any]) -> dict[str, str]:
    return {f"{param}.{key}": f"{entry}.{key}" for key in options}


def walk(task: luigi.Task) -> Iterator[luigi.Task]:
    yield task
    for upstream in flatten(task.requires()):
        yield from walk(upstream)


@from_settings("device.policy", "device.options", "executor.name", "executors")
class TrainingRun(RunTask):
    """A run that trains: the device policy comes from the command line or the ``device``
    section, the executor (where each stage's process runs) from --executor or ``executor``
    and its options from --executor-options over ``executors.<name>``."""

    def executor_params(self) -> dict[str, Any]:
        """The executor and its options (executors.<name>, --executor-options on top), checked here
        before anything is scheduled."""
        config = self.merged_config()
        name = config.get("executor", "name")
        config = cfg.apply_entry(config, "executors", name, self.executor_options, "--executor-options")
        options = config.entry("executors", name)
        plugin_checks.check_executor(name, options, config)
        for stage, other in plugin_checks.stage_executors(config).items():
            if other != name:  # this stage's entry carries its own executor and options (tasks/protocol.py)
                own = config.entry("executors", other)
                plugin_checks.check_executor(other, own, config, "executor.stages")
                entry = {key: value for key, value in own.items() if key != "stages"}
                entry.update((own.get("stages") or {}).get(stage) or {}, executor=other)
                options.setdefault("stages", {})[stage] = entry
        device = self.device_params()
        device_where = "command line --device" if self.device is not None else config.where("device.policy")
        plugin_checks.check_cluster_devices(name, options, device["device"], device["device_options"], config,
                                            device_where)
        return {"executor": name, "executor_options": options}

    # Set by a Sweep (pipelines/sweep): the trial's {setting path: value} and {path: file:line}.
    sweep_trial = luigi.OptionalDictParameter(default=None, description="set by Sweep, not on the command "
                                              "line: one trial's values over the --config file")

    def resolved_config(self) -> cfg.Config:
        if self.sweep_trial is None:
            return super().resolved_config()
        if "_config" not in self.__dict__:
            from pipelines.sweep.spec import trial_config

            trial = settings.plain(self.sweep_trial)
            self.__dict__["_config"] = trial_config(self.config, trial["values"], trial["origins"])
        return self.__dict__["_config"]

    def device_params(self) -> dict[str, Any]:
        device, options = cfg.device_policy(self.resolved_config(), self.device,
                                            self.device_options)
        return {"device": device, "device_options": options}

    def plugin_entries(self, config: cfg.Config, model: tuple[str, Any], dataset: tuple[str, Any],
                       given_options: Any, flag: str) -> tuple[cfg.Config, dict[str, Any], dict[str, Any]]:
        """--model-params and the dataset's options (`flag`) over models.<model> and
        datasets.<dataset>, each checked against its plugin's DEFAULTS; (config, hparams, options)."""
        (model_name, model_info), (dataset_name, data_info) = model, dataset
        config = cfg.apply_entry(config, "models", model_name, self.model_params, "--model-params")
        config = cfg.apply_entry(config, "datasets", dataset_name, given_options, flag)
        self.__dict__["_merged"] = config
        model_params = config.entry("models", model_name)
        options = config.entry("datasets", dataset_name)
        plugin_checks.check_options(model_info, model_params, f"models.{model_name}", config,
                                    "hyper-parameter")
        plugin_checks.check_options(data_info, options, f"datasets.{dataset_name}", config, "option")
        return config, model_params, options



