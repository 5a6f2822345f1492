"""The text path's held-out scoring and model loading (imported only in worker processes and
benchmarks): training validates with HeldoutScorer, evaluation reports with it.

- `heldout_streams` / `HeldoutScorer`: cross-entropy of a model on held-out text.
- `load_char_model`: a trained model, checked against the data's vocabulary.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from plugins.errors import TfpipeError

KIND = "char_language_model"
EVAL_STREAMS = 16


def heldout_streams(ids: np.ndarray, streams: int = EVAL_STREAMS) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, targets) of shape (streams, length): the held-out text cut into contiguous
    pieces, each read from its start with the state carried along it."""
    streams = max(1, min(streams, (len(ids) - 1) // 2))
    length = (len(ids) - 1) // streams
    x = ids[: streams * length].reshape(streams, length)
    y = ids[1: streams * length + 1].reshape(streams, length)
    return x.astype(np.int32), y.astype(np.int32)


class HeldoutScorer:
    """Mean next-character cross-entropy of `model` on `ids` (nats), bits per char, accuracy."""

    def __init__(self, model: Any, ids: np.ndarray):
        import tensorflow as tf

        x, y = heldout_streams(ids)
        self.x, self.y, self.count = tf.constant(x), tf.constant(y), int(y.size)

        @tf.function
        def score(x, y):
            logits = model(x, training=False)
            losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)
            correct = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), y), tf.float32)
            return tf.reduce_mean(losses), tf.reduce_mean(correct)

        self._score = score

    def __call__(self, final: bool = True) -> dict[str, float]:
        """The whole held-out text, at every checkpoint of training (`final` says whether it
        is the last) and in evaluation."""
        loss, accuracy = (float(v) for v in self._score(self.x, self.y))
        return {"loss": loss, "bits_per_char": loss / math.log(2), "accuracy": accuracy}


def load_char_model(model_dir: Path, vocab: list[str], where: str):
    """The trained Keras model of `model_dir`, checked against the data's vocabulary."""
    import keras

    from tasks.text.prep import check_vocab

    path = model_dir / "model.keras"
    if not path.is_file():
        raise TfpipeError(f"{path} is missing; delete {model_dir} and rerun to retrain")
    model = keras.models.load_model(str(path), compile=False)
    vocab_file = model_dir / "vocab.json"
    model_vocab = json.loads(vocab_file.read_text("utf-8")) if vocab_file.is_file() else None
    check_vocab(int(model.output_shape[-1]), vocab, model_vocab, where)
    return model
