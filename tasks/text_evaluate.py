"""Evaluation stage of the text path (the work runs in tasks.text_evaluate_tf)."""
from __future__ import annotations

from luigi.util import requires

from tasks.model_task import EvaluationTask
from tasks.text_data import corpus_label
from tasks.text_train import TrainTextModel


@requires(TrainTextModel)
class EvaluateTextModel(EvaluationTask):
    """Reads model.keras and the held-out ids; writes metrics.json (bits_per_char, perplexity,
    loss_nats, accuracy, count) and training_curves.png."""

    worker_module = "tasks.text_evaluate_tf"

    def run_name(self) -> str:
        return f"{corpus_label(self.corpus)}-{self.model}"

    def title(self) -> str:
        return f"{self.model} on {corpus_label(self.corpus)}"
