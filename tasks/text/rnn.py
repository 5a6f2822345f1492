"""TensorFlow side of the text path (imported only in worker processes and benchmarks).

- `heldout_streams` / `HeldoutScorer`: cross-entropy of a model on held-out text.
- `Stepper`: runs a plain Keras character model one character at a time,
  carrying the recurrent state, so generation costs one step per character
  instead of a whole window.
- `Sampler`: the whole seeded sampling loop, all temperatures as one batch,
  compiled into one tf.function.
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


class Stepper:
    """One character step of a plain Keras model: walks `model.layers`, applying each recurrent
    layer's cell with carried states and every other layer directly (they act per position)."""

    def __init__(self, model: Any):
        import keras

        self.layers = []
        for layer in model.layers:
            if isinstance(layer, keras.layers.InputLayer):
                continue
            if isinstance(layer, keras.layers.Bidirectional) or getattr(layer, "go_backwards", False):
                raise TfpipeError(f"layer {layer.name!r} reads the text backwards; a character model "
                                  "for generation must be causal (forward recurrent layers only)")
            if isinstance(layer, keras.layers.RNN) and not layer.return_sequences:
                raise TfpipeError(f"recurrent layer {layer.name!r} has return_sequences=False; a "
                                  "character language model must predict at every position")
            self.layers.append((layer, isinstance(layer, keras.layers.RNN)))
        if not any(recurrent for _, recurrent in self.layers):
            raise TfpipeError(f"model {model.name!r} has no recurrent layer to carry state in")

    def initial_state(self, batch: int) -> list[list[Any]]:
        import tensorflow as tf

        states = []
        for layer, recurrent in self.layers:
            if recurrent:
                sizes = layer.cell.state_size
                sizes = sizes if isinstance(sizes, (list, tuple)) else [sizes]
                states.append([tf.zeros((batch, int(size)), layer.cell.compute_dtype) for size in sizes])
        return states

    def step(self, ids: Any, states: list[list[Any]]) -> tuple[Any, list[list[Any]]]:
        """ids (batch,) -> logits (batch, vocab) and the new states."""
        x, new_states, i = ids, [], 0
        for layer, recurrent in self.layers:
            if recurrent:
                x, state = layer.cell(x, states[i], training=False)
                new_states.append(list(state) if isinstance(state, (list, tuple)) else [state])
                i += 1
            else:
                x = layer(x, training=False)
        return x, new_states


class Sampler:
    """Seeded sampling: prime with a seed passage, then draw `length` characters per
    temperature; the whole loop is one compiled tf.function."""

    def __init__(self, model: Any):
        import tensorflow as tf

        self.stepper = Stepper(model)
        self.step = tf.function(self.stepper.step)

        @tf.function
        def sample(seed_ids, temperatures, length, seed):
            batch = tf.shape(temperatures)[0]
            states = self.stepper.initial_state(batch)
            shapes = tf.nest.map_structure(lambda state: state.shape, states)

            def advance(ids, states):
                logits, states = self.stepper.step(ids, states)
                # Some cells lose the static batch size; loop variables must keep their shapes.
                return logits, tf.nest.map_structure(tf.ensure_shape, states, shapes)

            for i in tf.range(tf.shape(seed_ids)[0] - 1):
                _, states = advance(tf.fill([batch], seed_ids[i]), states)
            ids = tf.fill([batch], seed_ids[-1])
            out = tf.TensorArray(tf.int32, size=length)
            for i in tf.range(length):
                logits, states = advance(ids, states)
                scaled = tf.cast(logits, tf.float32) / temperatures[:, None]
                ids = tf.cast(tf.random.stateless_categorical(
                    scaled, 1, seed=tf.stack([tf.cast(seed, tf.int64), tf.cast(i, tf.int64)]))[:, 0], tf.int32)
                out = out.write(i, ids)
            return tf.transpose(out.stack())

        self._sample = sample

    def __call__(self, seed_ids: np.ndarray, temperatures: list[float], length: int, seed: int) -> np.ndarray:
        """int32 array (len(temperatures), length) of sampled ids."""
        import tensorflow as tf

        if len(seed_ids) == 0:
            raise TfpipeError("the seed passage is empty; generation needs at least one character")
        return self._sample(tf.constant(seed_ids, tf.int32), tf.constant(temperatures, tf.float32),
                            tf.constant(length, tf.int32), tf.constant(seed, tf.int64)).numpy()
