"""Evaluation stage of the image path (the work runs in tasks.evaluate_tf)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from luigi.util import requires

from tasks.base import PipelineTask
from tasks.child import run_worker
from tasks.train import TrainImageModel


@requires(TrainImageModel)
class EvaluateImageModel(PipelineTask):
    """Reads the exported model and the test split; writes metrics.json (loss, accuracy,
    per-class accuracy, confusion matrix), confusion_matrix.png and training_curves.png."""

    stage = "evaluate"
    worker_module = "tasks.evaluate_tf"

    def run_name(self) -> str:
        return f"{self.dataset}-{self.model}"

    def produce(self, folder: Path) -> dict[str, Any]:
        train = self.requires()
        request = {
            "data_dir": str(train.requires().folder()),
            "model_dir": str(train.folder()),
            "out_dir": str(folder),
            "title": f"{self.model} on {self.dataset}",
        }
        return run_worker(self, self.worker_module, request, folder)
