"""The runs users name for the image and text paths: ImageRun, TextRun and FullRun (both)."""
from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import luigi
from luigi.task import flatten

from pipelines import config as cfg
from pipelines import plugin_checks
from pipelines.params import from_settings
from pipelines.run_task import RunTask, TrainingRun, entry_paths, walk
from pipelines.summary import (
    image_summary,
    text_summary,
)
from plugins.datasets.api import IMAGE, DataError
from plugins.errors import TfpipeError
from tasks.base import PipelineTask
from tasks.image.evaluate import EvaluateImageModel
from tasks.image.preprocess import PreprocessImages
from tasks.text.download import corpus_label
from tasks.text.evaluate import EvaluateTextModel
from tasks.text.generate import GenerateText
from tasks.text.train import TrainTextModel

logger = logging.getLogger(__name__)


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
        config, model_params, dataset_options = self.plugin_entries(
            config, (model, model_info), (dataset, data_info), self.dataset_options, "--dataset-options")
        self.__dict__["_param_paths"] = {
            **{key: f"image.{key}" for key in image},
            **entry_paths("model_params", f"models.{model}", model_params),
            **entry_paths("dataset_options", f"datasets.{dataset}", dataset_options),
        }
        task = EvaluateImageModel(workspace=self.root(), mirror=mirror, **self.device_params(),
                                  **self.executor_params(),
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
    for task in walk(root):
        if isinstance(task, PreprocessImages):
            with _blaming(config, "image.validation_fraction", "image.batch_size"):
                task.check_settings(config.get("image", "batch_size"))
            return


def _check_text_settings(root: luigi.Task, config: cfg.Config) -> None:
    """The validation and held-out parts against the text, then window and batch_size against the
    length of the training text, before anything runs."""
    for task in walk(root):
        if isinstance(task, TrainTextModel):
            with _blaming(config, "text.validation_fraction", "text.holdout"):
                task.requires().check_settings()
            with _blaming(config, "text.window", "text.batch_size"):
                task.check_settings()
            return


@contextmanager
def _blaming(config: cfg.Config, *paths: str) -> Iterator[None]:
    """A settings check's error names where the settings it depends on were set."""
    try:
        yield
    except DataError:
        raise  # the data itself is unreadable: its message names the file, not a setting
    except TfpipeError as exc:
        where = "; ".join(config.set_by(path) or path for path in paths)
        raise cfg.ConfigError(f"{where}: {exc}") from exc


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
        config, model_params, corpus_options = self.plugin_entries(
            config, (model, model_info), (corpus, data_info), self.corpus_options, "--corpus-options")
        paths = {key: f"text.{key}" for key in text}
        paths.update(entry_paths("model_params", f"models.{model}", model_params))
        paths.update(entry_paths("corpus_options", f"datasets.{corpus}", corpus_options))
        if path_option is not None:  # --corpus FILE: the path option comes from text.corpus
            corpus_options["path"] = path_option
            paths["corpus_options.path"] = "text.corpus"
        self.__dict__["_param_paths"] = paths
        text["corpus"] = corpus
        common = {key: value for key, value in text.items() if key not in self.GENERATION}
        common.update(workspace=self.root(), mirror=mirror, model_params=model_params,
                      corpus_options=corpus_options, **self.device_params(), **self.executor_params())
        tasks = {
            "evaluate": EvaluateTextModel(**common),
            "generate": GenerateText(**common, **{key: text[key] for key in self.GENERATION}),
        }
        _check_text_settings(tasks["evaluate"], config)
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
                  "device": self.device, "device_options": self.device_options,
                  "executor": self.executor, "executor_options": self.executor_options}
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


