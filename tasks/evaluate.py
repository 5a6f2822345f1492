"""Evaluation stage of the image path (the work runs in tasks.evaluate_tf)."""
from __future__ import annotations

from luigi.util import requires

from tasks.model_task import EvaluationTask
from tasks.train import TrainImageModel


@requires(TrainImageModel)
class EvaluateImageModel(EvaluationTask):
    """Reads the exported model and the test split; writes metrics.json (loss, accuracy,
    per-class accuracy, confusion matrix), confusion_matrix.png and training_curves.png."""

    worker_module = "tasks.evaluate_tf"

    def run_name(self) -> str:
        return f"{self.dataset}-{self.model}"

    def title(self) -> str:
        return f"{self.model} on {self.dataset}"
