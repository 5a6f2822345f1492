"""Training stage of the text path (the work runs in tasks.text_train_tf, a TF subprocess)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import luigi
from luigi.util import requires

from tasks.model_task import TrainingTask
from tasks.text_data import PreprocessText, corpus_label
from tasks.text_prep import check_window


@requires(PreprocessText)
class TrainTextModel(TrainingTask):
    """Reads the encoded text; trains a character language model plugin to predict the next
    character at every position of a window; writes checkpoints, history.json, TensorBoard
    logs, model.keras and vocab.json. Resumes from its newest checkpoint."""

    stage = "train"
    worker_module = "tasks.text_train_tf"

    model_params = luigi.DictParameter(default={}, description="overrides of the plugin's hyper-parameters")
    window = luigi.IntParameter(default=100, description="characters per training sequence")
    steps = luigi.IntParameter(default=3500)
    batch_size = luigi.IntParameter(default=64)
    learning_rate = luigi.FloatParameter(default=4e-3)
    seed = luigi.IntParameter(default=1)
    checkpoint_every = luigi.IntParameter(default=250, significant=False)
    deterministic = luigi.BoolParameter(default=False, significant=False)

    def run_name(self) -> str:
        return f"{corpus_label(self.corpus)}-{self.model}"

    def produce(self, folder: Path) -> dict[str, Any]:
        data = self.requires().folder()
        meta = json.loads((data / "meta.json").read_text("utf-8"))
        check_window(meta["counts"]["train"], self.window, self.batch_size)  # fail before starting TF
        request = {
            "data_dir": str(data),
            "out_dir": str(folder),
            "model": self.model,
            "model_params": self.significant_params()["model_params"],
            "window": self.window,
            "steps": self.steps,
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
            "checkpoint_every": self.checkpoint_every,
            "seed": self.seed,
            "deterministic": self.deterministic,
        }
        return self.train_in_worker(request, folder)
