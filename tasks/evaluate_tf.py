"""TensorFlow worker of EvaluateImageModel (runs in a subprocess).

Loads the exported SavedModel (no plugin code needed) and the test split;
writes metrics.json, confusion_matrix.png and training_curves.png.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from tasks import atomic
from tasks.metrics import classification_metrics
from tasks.plots import confusion_matrix_png, history_png
from tasks.tf_runtime import start_tensorflow
from tasks.worker import Progress, main

BATCH = 1000


def evaluate(request: dict[str, Any]) -> dict[str, Any]:
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
    main(evaluate)
