"""Training stage of the image path (its work() runs in its own TensorFlow process)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import luigi
from luigi.util import requires

from tasks import atomic
from tasks.image.data import PreprocessImages
from tasks.model_task import TrainingTask
from tasks.protocol import emit


@requires(PreprocessImages)
class TrainImageModel(TrainingTask):
    """Reads the preprocessed splits; trains the model plugin; writes checkpoints, history,
    TensorBoard logs and the exported model. Resumes from its newest checkpoint."""

    stage = "train"

    model_params = luigi.DictParameter(description="overrides of the plugin's hyper-parameters")
    steps = luigi.IntParameter()
    batch_size = luigi.IntParameter()
    learning_rate = luigi.FloatParameter()
    lr_schedule = luigi.ChoiceParameter(choices=["constant", "cosine"],
                                        description="cosine: decay to learning_rate/10 by the last step")
    seed = luigi.IntParameter()
    # How often to checkpoint and whether ops are deterministic do not change what is learnt.
    checkpoint_every = luigi.IntParameter(significant=False)
    deterministic = luigi.BoolParameter(default=False, significant=False)

    def run_name(self) -> str:
        return f"{self.dataset}-{self.model}"

    def produce(self, folder: Path) -> dict[str, Any]:
        request = {
            "data_dir": str(self.requires().folder()),
            "out_dir": str(folder),
            "model": self.model,
            "model_params": self.significant_params()["model_params"],
            "steps": self.steps,
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
            "lr_schedule": self.lr_schedule,
            "checkpoint_every": self.checkpoint_every,
            "seed": self.seed,
            "deterministic": self.deterministic,
        }
        return self.train_in_worker(request, folder)


# ----- the stage's own process: python -m tasks.image.train REQUEST.json -----

EVAL_BATCH = 1000


def work(request: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    from tasks import tf_runtime
    from tasks.batching import batch_indices
    from tasks.tf_runtime import build_model, model_caller, start_tensorflow
    from tasks.training_loop import TrainingLoop, compile_train_step
    tf = start_tensorflow(request["seed"], request["deterministic"], request.get("device"))
    import keras

    strategy = tf_runtime.strategy()

    data_dir, out = Path(request["data_dir"]), Path(request["out_dir"])
    meta = json.loads((data_dir / "meta.json").read_text("utf-8"))
    # The whole training set lives in memory as tensors; tf.data streams only batch indices
    # and the gather happens inside the compiled step.
    x_train = tf.constant(np.load(data_dir / "train_x.npy"))
    y_train = tf.constant(np.load(data_dir / "train_y.npy"))
    x_val, y_val = np.load(data_dir / "val_x.npy"), np.load(data_dir / "val_y.npy")

    with strategy.scope():  # variables are mirrored when the device policy has several replicas
        model, hparams = build_model(request["model"], meta, request["model_params"], "image_classifier")
        optimizer = keras.optimizers.Adam(learning_rate=learning_rate_schedule(
            request["learning_rate"], request.get("lr_schedule", "constant"), request["steps"]))
        call = model_caller(model)  # bare tf.Module models may not take `training`
        call(x_train[:1], False)  # create the variables before restoring into them
        optimizer.build(model.trainable_variables)
    loop = TrainingLoop(out, model, optimizer, f"train {request['model']}", request["checkpoint_every"],
                        request["learning_rate"])

    total_steps, batch_size = request["steps"], request["batch_size"]
    indices = batch_indices(int(x_train.shape[0]), batch_size, request["seed"], loop.resumed_from, total_steps)
    batches = tf.data.Dataset.from_tensor_slices(indices).prefetch(tf.data.AUTOTUNE)

    def forward(index):
        x, y = tf.gather(x_train, index), tf.gather(y_train, index)
        logits = call(x, True)
        loss = tf.reduce_sum(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))
        correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), y), tf.float32))
        return loss, {"accuracy": correct}

    train_step = compile_train_step(strategy, model, optimizer, loop.step, batch_size, batch_size, forward)

    @tf.function
    def eval_step(x, y):
        logits = call(x, False)
        return (tf.reduce_sum(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)),
                tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), y), tf.float32)))

    def validate() -> dict[str, float]:
        loss_sum = correct = 0.0
        for start in range(0, len(x_val), EVAL_BATCH):
            batch_loss, batch_correct = eval_step(x_val[start:start + EVAL_BATCH], y_val[start:start + EVAL_BATCH])
            loss_sum += float(batch_loss)
            correct += float(batch_correct)
        return {"loss": loss_sum / len(x_val), "accuracy": correct / len(x_val)}

    result = loop.run(train_step, batches, total_steps, validate, units_per_step=batch_size)
    result["exported"] = export(model, out, x_train[:1])
    result["hparams"] = hparams
    result["parameters"] = int(sum(int(np.prod(v.shape)) for v in model.trainable_variables))
    result["device"] = tf_runtime.device_record()
    return result


def learning_rate_schedule(learning_rate: float, schedule: str, steps: int):
    """A constant rate, or cosine decay to a tenth of it over the run (a function of the
    optimizer's step count, which checkpoints restore, so resuming keeps the schedule)."""
    import keras

    if schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=steps, alpha=0.1)
    return learning_rate


def export(model, out: Path, example) -> list[str]:
    """SavedModel (loads without any tfpipe or plugin code) and, where possible, .keras."""
    import tensorflow as tf

    exported = []
    saved = out / "saved_model"
    if hasattr(model, "export"):
        model.export(str(saved), verbose=False)
    else:  # a bare tf.Module: export its call as the serving endpoint
        model.serve = tf.function(lambda x: model(x),
                                  input_signature=[tf.TensorSpec([None, *example.shape[1:]], tf.float32)])
        tf.saved_model.save(model, str(saved))
    exported.append("saved_model")
    try:
        model.save(str(out / "model.keras"))
        exported.append("model.keras")
    except Exception as exc:  # noqa: BLE001  subclassed models without get_config: no .keras
        emit("log", message=f"model.keras not written ({type(exc).__name__}: {exc}); saved_model is")
    atomic.write_json(out / "export.json", {"formats": exported})
    return exported


if __name__ == "__main__":
    from tasks.protocol import main

    main(work)
