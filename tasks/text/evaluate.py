"""Evaluation stage of the text path (its work() runs in its own TensorFlow process)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from luigi.util import requires

from tasks import atomic
from tasks.model_task import EvaluationTask
from tasks.text.download import corpus_label
from tasks.text.train import TrainTextModel


@requires(TrainTextModel)
class EvaluateTextModel(EvaluationTask):
    """Reads model.keras and the held-out ids; writes metrics.json (bits_per_char, perplexity,
    loss_nats, accuracy, count) and training_curves.png."""


    def run_name(self) -> str:
        return f"{corpus_label(self.corpus, self.corpus_options)}-{self.model}"

    def title(self) -> str:
        return f"{self.model} on {corpus_label(self.corpus, self.corpus_options)}"


# ----- the stage's own process: python -m tasks.text.evaluate REQUEST.json -----

def work(request: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    from tasks.plots import history_png
    from tasks.text.scoring import HeldoutScorer, load_char_model
    from tasks.tf_runtime import start_tensorflow
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
    from tasks.protocol import main

    main(work)
