"""Evaluation stage of the image path (its work() runs in its own TensorFlow process)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from luigi.util import requires

from tasks import atomic
from tasks.image.train import TrainImageModel
from tasks.model_task import EvaluationTask
from tasks.protocol import Progress


@requires(TrainImageModel)
class EvaluateImageModel(EvaluationTask):
    """Reads the exported model and the test split; writes metrics.json (loss, accuracy,
    per-class accuracy, confusion matrix), confusion_matrix.png and training_curves.png."""


    def run_name(self) -> str:
        return f"{self.dataset}-{self.model}"

    def title(self) -> str:
        return f"{self.model} on {self.dataset}"


# ----- the stage's own process: python -m tasks.image.evaluate REQUEST.json -----

BATCH = 1000


def work(request: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    from tasks.metrics import classification_metrics
    from tasks.plots import confusion_matrix_png, history_png
    from tasks.tf_runtime import start_tensorflow
    tf = start_tensorflow(seed=0, deterministic=False)
    data_dir, model_dir, out = Path(request["data_dir"]), Path(request["model_dir"]), Path(request["out_dir"])
    meta = json.loads((data_dir / "meta.json").read_text("utf-8"))
    x_test, y_test = np.load(data_dir / "test_x.npy"), np.load(data_dir / "test_y.npy")
    exported = tf.saved_model.load(str(model_dir / "saved_model"))  # keep: .serve needs its variables
    progress = Progress(len(x_test), "evaluate")
    logits = []
    for start in range(0, len(x_test), BATCH):
        logits.append(np.asarray(exported.serve(tf.constant(x_test[start:start + BATCH]))))
        progress.update(min(start + BATCH, len(x_test)))
    metrics = classification_metrics(np.concatenate(logits), y_test, meta["num_classes"])
    metrics["class_names"] = meta["class_names"]
    atomic.write_json(out / "metrics.json", metrics)
    title = f"{request['title']}: test accuracy {metrics['accuracy']:.4f}"
    confusion_matrix_png(metrics["confusion_matrix"], meta["class_names"], out / "confusion_matrix.png", title)
    history = json.loads((model_dir / "history.json").read_text("utf-8"))
    history_png(history, out / "training_curves.png", request["title"])
    return {key: metrics[key] for key in ("loss", "accuracy", "count")}


if __name__ == "__main__":
    from tasks.protocol import main

    main(work)
