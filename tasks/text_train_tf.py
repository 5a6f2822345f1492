"""TensorFlow worker of TrainTextModel: train a character model, checkpoint, export (subprocess).

Reads train_ids.npy, heldout_ids.npy, vocab.json and meta.json; writes into the
task folder ``checkpoints/``, ``history.json``, ``tensorboard/`` (see
tasks.loop_tf), then ``model.keras`` and ``vocab.json`` (the vocabulary the
model reads and writes, checked by evaluation and generation).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from tasks import atomic, tf_runtime
from tasks.batching import batch_indices
from tasks.loop_tf import TrainingLoop, compile_train_step
from tasks.text_prep import check_window
from tasks.text_tf import KIND, HeldoutScorer
from tasks.tf_runtime import build_model, start_tensorflow
from tasks.worker import main

CLIP_NORM = 5.0  # recurrent nets occasionally spike; clipping keeps one bad batch from diverging


def train(request: dict[str, Any]) -> dict[str, Any]:
    tf = start_tensorflow(request["seed"], request["deterministic"], request.get("device"))
    import keras

    strategy = tf_runtime.strategy()

    data_dir, out = Path(request["data_dir"]), Path(request["out_dir"])
    meta = json.loads((data_dir / "meta.json").read_text("utf-8"))
    vocab = json.loads((data_dir / "vocab.json").read_text("utf-8"))
    ids = np.load(data_dir / "train_ids.npy")
    window, batch_size, total_steps = request["window"], request["batch_size"], request["steps"]
    starts_count = check_window(len(ids), window, batch_size)
    text = tf.constant(ids)  # the whole text lives in memory; the step gathers its windows

    with strategy.scope():  # variables are mirrored when the device policy has several replicas
        model, hparams = build_model(request["model"], {"vocab_size": meta["vocab_size"]},
                                     request["model_params"], KIND)
        optimizer = keras.optimizers.Adam(learning_rate=request["learning_rate"], clipnorm=CLIP_NORM)
        model(tf.zeros((1, window), tf.int32))  # create the variables before restoring into them
        optimizer.build(model.trainable_variables)
    loop = TrainingLoop(out, model, optimizer, f"train {request['model']}", request["checkpoint_every"],
                        request["learning_rate"])

    # Each sample is a window start; the order is a function of (seed, step) so resume is exact.
    starts = batch_indices(starts_count, batch_size, request["seed"], loop.resumed_from, total_steps)
    batches = tf.data.Dataset.from_tensor_slices(starts).prefetch(tf.data.AUTOTUNE)
    offsets = tf.range(window + 1, dtype=tf.int32)

    def forward(start):
        sequences = tf.gather(text, start[:, None] + offsets[None, :])
        x, y = sequences[:, :-1], sequences[:, 1:]  # the next character at every position
        logits = model(x, training=True)
        loss = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
        correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), y), tf.float32))
        return loss, {"accuracy": correct}

    train_step = compile_train_step(strategy, model, optimizer, loop.step, batch_size, batch_size * window,
                                    forward)

    validate = HeldoutScorer(model, np.load(data_dir / "heldout_ids.npy"))
    result = loop.run(train_step, batches, total_steps, validate, units_per_step=batch_size * window,
                      unit="chars")
    model.save(str(out / "model.keras"))
    atomic.write_json(out / "vocab.json", vocab)
    result["exported"] = ["model.keras"]
    result["hparams"] = hparams
    result["parameters"] = int(sum(int(np.prod(v.shape)) for v in model.trainable_variables))
    result["device"] = tf_runtime.device_record()
    return result


if __name__ == "__main__":
    main(train)
