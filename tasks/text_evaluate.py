"""Evaluation stage of the text path (the work runs in tasks.text_evaluate_tf)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from luigi.util import requires

from tasks.base import PipelineTask
from tasks.child import run_worker
from tasks.text_data import corpus_label
from tasks.text_train import TrainTextModel


@requires(TrainTextModel)
class EvaluateTextModel(PipelineTask):
    """Reads model.keras and the held-out ids; writes metrics.json (bits_per_char, perplexity,
    loss_nats, accuracy, count) and training_curves.png."""

    stage = "evaluate"
    worker_module = "tasks.text_evaluate_tf"

    def run_name(self) -> str:
        return f"{corpus_label(self.corpus)}-{self.model}"

    def produce(self, folder: Path) -> dict[str, Any]:
        train = self.requires()
        request = {
            "data_dir": str(train.requires().folder()),
            "model_dir": str(train.folder()),
            "out_dir": str(folder),
            "title": f"{self.model} on {corpus_label(self.corpus)}",
        }
        return run_worker(self, self.worker_module, request, folder)
