"""TensorFlow worker of TrainImageModel: train, checkpoint, export (runs in a subprocess).

Reads the preprocessed .npy splits; writes into the task folder:
``checkpoints/`` (model, optimizer, step; the batch order is a function of the
step), ``history.json``, ``tensorboard/{train,validation}``, ``model.keras``
and ``saved_model/``. Restarts resume from the newest checkpoint.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from tasks import atomic
from tasks.batching import batch_indices
from tasks.errors import TfpipeError
from tasks.tf_runtime import build_model, start_tensorflow
from tasks.worker import Progress, emit, main

EVAL_BATCH = 1000


def _load_history(path: Path, upto_step: int) -> dict[str, list[dict[str, float]]]:
    """History up to the restored step: entries of a crashed run past it are dropped."""
    try:
        history = json.loads(path.read_text("utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {"train": [], "validation": []}
    return {key: [row for row in rows if row["step"] <= upto_step] for key, rows in history.items()}


def _diverged(step: int, loss: float, learning_rate: float, last_checkpoint: int) -> TfpipeError:
    return TfpipeError(
        f"training diverged: loss is {loss} at step {step} (learning_rate={learning_rate}); "
        f"lower image.learning_rate (or --learning-rate) and rerun. Nothing past step "
        f"{last_checkpoint} was checkpointed.")


def train(request: dict[str, Any]) -> dict[str, Any]:
    tf = start_tensorflow(request["seed"], request["deterministic"])
    import keras

    data_dir, out = Path(request["data_dir"]), Path(request["out_dir"])
    meta = json.loads((data_dir / "meta.json").read_text("utf-8"))
    x_train = tf.constant(np.load(data_dir / "train_x.npy"))
    y_train = tf.constant(np.load(data_dir / "train_y.npy"))
    x_val, y_val = np.load(data_dir / "val_x.npy"), np.load(data_dir / "val_y.npy")

    model, hparams = build_model(request["model"], meta, request["model_params"], "image_classifier")
    optimizer = keras.optimizers.Adam(learning_rate=request["learning_rate"])
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model(x_train[:1])  # create the variables before restoring into them
    optimizer.build(model.trainable_variables)

    step = tf.Variable(0, dtype=tf.int64, name="step")
    # Keras 3 models expose no checkpoint dependencies of their own: list every model
    # variable (trainable or not) explicitly so nothing is silently left out.
    checkpoint = tf.train.Checkpoint(model_variables=list(model.variables), optimizer=optimizer, step=step)
    manager = tf.train.CheckpointManager(checkpoint, str(out / "checkpoints"), max_to_keep=3)
    resumed_from = 0
    if manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        resumed_from = int(step.numpy())
        emit("log", message=f"resuming {request['model']} from checkpoint at step {resumed_from}")
    total_steps, batch_size = request["steps"], request["batch_size"]
    history = _load_history(out / "history.json", resumed_from)

    indices = batch_indices(int(x_train.shape[0]), batch_size, request["seed"], resumed_from, total_steps)
    batches = tf.data.Dataset.from_tensor_slices(indices).prefetch(tf.data.AUTOTUNE)

    @tf.function
    def train_step(images, labels, index):
        x, y = tf.gather(images, index), tf.gather(labels, index)
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            loss = loss_fn(y, logits)
            if model.losses:
                loss += tf.add_n(model.losses)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        step.assign_add(1)
        correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), y), tf.float32))
        return loss, correct

    @tf.function
    def eval_step(x, y):
        logits = model(x, training=False)
        return (tf.reduce_sum(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)),
                tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), y), tf.float32)))

    def validate() -> tuple[float, float]:
        loss_sum = correct = 0.0
        for start in range(0, len(x_val), EVAL_BATCH):
            batch_loss, batch_correct = eval_step(x_val[start:start + EVAL_BATCH], y_val[start:start + EVAL_BATCH])
            loss_sum += float(batch_loss)
            correct += float(batch_correct)
        return loss_sum / len(x_val), correct / len(x_val)

    writers = {name: tf.summary.create_file_writer(str(out / "tensorboard" / name))
               for name in ("train", "validation")}
    progress = Progress(total_steps, f"train {request['model']}", start=resumed_from)
    window_loss, window_correct, window_steps = [], [], 0
    last_checkpoint = resumed_from
    started = time.perf_counter()
    current = resumed_from

    def record(current: int) -> dict[str, float]:
        nonlocal window_loss, window_correct, window_steps
        losses = tf.stack(window_loss).numpy()
        if not np.isfinite(losses).all():
            first = int(np.argmin(np.isfinite(losses)))
            raise _diverged(current - window_steps + first + 1, float(losses[first]),
                            request["learning_rate"], last_checkpoint)
        loss = float(losses.mean())
        accuracy = float(tf.add_n(window_correct)) / (window_steps * batch_size)
        window_loss, window_correct, window_steps = [], [], 0
        history["train"].append({"step": current, "loss": loss, "accuracy": accuracy})
        with writers["train"].as_default():
            tf.summary.scalar("loss", loss, step=current)
            tf.summary.scalar("accuracy", accuracy, step=current)
        return {"loss": loss, "accuracy": accuracy}

    log_every = max(1, min(100, request["checkpoint_every"]))
    for index in batches:
        loss, correct = train_step(x_train, y_train, index)
        window_loss.append(loss)
        window_correct.append(correct)
        window_steps += 1
        current += 1
        at_checkpoint = current % request["checkpoint_every"] == 0 or current == total_steps
        if current % log_every == 0 or at_checkpoint:
            metrics = record(current)
            elapsed = time.perf_counter() - started
            metrics["samples_per_s"] = (current - resumed_from) * batch_size / elapsed
            if at_checkpoint:
                val_loss, val_accuracy = validate()
                history["validation"].append({"step": current, "loss": val_loss, "accuracy": val_accuracy})
                with writers["validation"].as_default():
                    tf.summary.scalar("loss", val_loss, step=current)
                    tf.summary.scalar("accuracy", val_accuracy, step=current)
                manager.save(checkpoint_number=current)
                atomic.write_json(out / "history.json", history)
                last_checkpoint = current
                metrics.update(val_loss=val_loss, val_accuracy=val_accuracy)
            progress.update(current, force=at_checkpoint, **metrics)
    train_seconds = time.perf_counter() - started
    for writer in writers.values():
        writer.flush()

    if manager.latest_checkpoint is None or int(step.numpy()) != total_steps:
        manager.save(checkpoint_number=int(step.numpy()))
    exported = export(model, out, x_train[:1])
    final_val = history["validation"][-1] if history["validation"] else {}
    return {
        "final_step": int(step.numpy()),
        "resumed_from": resumed_from,
        "hparams": hparams,
        "train_seconds": round(train_seconds, 2),
        "samples_per_s": round((total_steps - resumed_from) * batch_size / train_seconds, 1)
        if train_seconds > 0 and total_steps > resumed_from else None,
        "val_loss": final_val.get("loss"),
        "val_accuracy": final_val.get("accuracy"),
        "parameters": int(sum(int(np.prod(v.shape)) for v in model.trainable_variables)),
        "exported": exported,
    }


def export(model, out: Path, example) -> list[str]:
    """SavedModel (loads without any tfpipe or plugin code) and, where possible, .keras."""
    import tensorflow as tf

    exported = []
    saved = out / "saved_model"
    if hasattr(model, "export"):
        model.export(str(saved), verbose=False)
    else:  # a bare tf.Module: export its call as the serving signature
        model.serve = tf.function(lambda x: model(x),
                                  input_signature=[tf.TensorSpec([None, *example.shape[1:]], tf.float32)])
        tf.saved_model.save(model, str(saved))
    exported.append("saved_model")
    try:
        model.save(str(out / "model.keras"))
        exported.append("model.keras")
    except Exception as exc:  # subclassed models without get_config cannot be re-created from .keras
        emit("log", message=f"model.keras not written ({type(exc).__name__}: {exc}); saved_model is")
    atomic.write_json(out / "export.json", {"formats": exported})
    return exported


if __name__ == "__main__":
    main(train)
