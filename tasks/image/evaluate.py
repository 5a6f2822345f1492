"""Evaluation stage of the image path (its work() runs in its own TensorFlow process)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from luigi.freezing import recursively_unfreeze
from luigi.util import requires

from tasks import atomic
from tasks.image.download import dataset_label
from tasks.image.train import TrainImageModel
from tasks.model_task import EvaluationTask
from tasks.protocol import Progress


@requires(TrainImageModel)
class EvaluateImageModel(EvaluationTask):
    """Reads the exported model and the test shards (streamed); writes metrics.json (loss,
    accuracy, per-class accuracy, confusion matrix), confusion_matrix.png and
    training_curves.png."""

    def run_name(self) -> str:
        return f"{self.dataset_label()}-{self.model}"

    def dataset_label(self) -> str:
        return dataset_label(self.dataset, recursively_unfreeze(self.dataset_options))

    def title(self) -> str:
        return f"{self.model} on {self.dataset_label()}"


# ----- the stage's own process: python -m tasks.image.evaluate REQUEST.json -----

BATCH = 1000


def work(request: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    from tasks.image import stream
    from tasks.image.shards import verify
    from tasks.metrics import classification_metrics
    from tasks.plots import confusion_matrix_png, history_png
    from tasks.tf_runtime import start_tensorflow
    tf = start_tensorflow(seed=0, deterministic=False)
    data_dir, model_dir = Path(request["data_dir"]), Path(request["model_dir"])
    out = Path(request["out_dir"])
    meta = json.loads((data_dir / "meta.json").read_text("utf-8"))
    verify(data_dir, meta)
    shape, total = meta["input_shape"], meta["counts"]["test"]
    # Keep `exported` alive: .serve needs its variables.
    exported = tf.saved_model.load(str(model_dir / "saved_model"))
    decode = tf.function(lambda records: stream.decode(records, shape))
    progress = Progress(total, "evaluate")
    logits, labels, done = [], [], 0
    for records in stream.eval_dataset(meta, data_dir, "test", BATCH):
        x, y = decode(records)
        logits.append(np.asarray(exported.serve(x)))
        labels.append(y.numpy())
        done += len(labels[-1])
        progress.update(done)
    metrics = classification_metrics(np.concatenate(logits), np.concatenate(labels),
                                     meta["num_classes"])
    metrics["class_names"] = meta["class_names"]
    atomic.write_json(out / "metrics.json", metrics)
    title = f"{request['title']}: test accuracy {metrics['accuracy']:.4f}"
    confusion_matrix_png(metrics["confusion_matrix"], meta["class_names"],
                         out / "confusion_matrix.png", title)
    history = json.loads((model_dir / "history.json").read_text("utf-8"))
    history_png(history, out / "training_curves.png", request["title"])
    return {key: metrics[key] for key in ("loss", "accuracy", "count")}


if __name__ == "__main__":
    from tasks.protocol import main

    main(work)
