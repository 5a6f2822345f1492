"""TensorFlow worker of EvaluateTextModel (runs in a subprocess).

Loads the trained model.keras and the held-out ids; writes metrics.json
(cross-entropy in bits per character and nats, perplexity per character,
next-character accuracy) and training_curves.png.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from tasks import atomic
from tasks.plots import history_png
from tasks.text_tf import HeldoutScorer, load_char_model
from tasks.tf_runtime import start_tensorflow
from tasks.worker import main


def evaluate(request: dict[str, Any]) -> dict[str, Any]:
    start_tensorflow(seed=0, deterministic=False)
    data_dir, model_dir, out = Path(request["data_dir"]), Path(request["model_dir"]), Path(request["out_dir"])
    vocab = json.loads((data_dir / "vocab.json").read_text("utf-8"))
    model = load_char_model(model_dir, vocab, str(model_dir))
    heldout = np.load(data_dir / "heldout_ids.npy")
    scorer = HeldoutScorer(model, heldout)
    scores = scorer()
    metrics = {
        "bits_per_char": scores["bits_per_char"],
        "perplexity": 2.0 ** scores["bits_per_char"],
        "loss_nats": scores["loss"],
        "accuracy": scores["accuracy"],
        "count": scorer.count,
        "vocab_size": len(vocab),
    }
    atomic.write_json(out / "metrics.json", metrics)
    history = json.loads((model_dir / "history.json").read_text("utf-8"))
    history_png(history, out / "training_curves.png", request["title"])
    return metrics


if __name__ == "__main__":
    main(evaluate)
