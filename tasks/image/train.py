"""Training stage of the image path (its work() runs in its own TensorFlow process)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import luigi
from luigi.freezing import recursively_unfreeze
from luigi.util import requires

from plugins import registry
from plugins.errors import TfpipeError
from tasks import atomic
from tasks.image.download import dataset_label
from tasks.image.preprocess import PreprocessImages
from tasks.image.test_time import TEST_AUGMENTS, resolved_test_augment
from tasks.model_task import TrainingTask
from tasks.protocol import emit

AUGMENTS = ("auto", "none", "mirror", "shift", "mirror+shift")


@requires(PreprocessImages)
class TrainImageModel(TrainingTask):
    """Reads the training and validation shards (streamed with tf.data); trains the model plugin;
    writes checkpoints, history, TensorBoard logs and the exported model. Resumes from its newest
    checkpoint: batches are a function of (seed, step)."""

    stage = "train"

    model_params = luigi.DictParameter(description="overrides of the plugin's hyper-parameters")
    steps = luigi.IntParameter(description="optimizer steps (batches)")
    batch_size = luigi.IntParameter()
    learning_rate = luigi.FloatParameter()
    lr_schedule = luigi.ChoiceParameter(
        choices=["constant", "cosine"],
        description="cosine: decay to learning_rate/10 by the last step")
    seed = luigi.IntParameter(description="seed of initialisation and batch order")
    # How often to checkpoint and whether ops are deterministic do not change what is learnt.
    checkpoint_every = luigi.IntParameter(significant=False)
    deterministic = luigi.BoolParameter(default=False, significant=False)
    jit_compile = luigi.ChoiceParameter(choices=["auto", "always", "never"], default="auto", significant=False,
                                        description="XLA-compile the training step (auto: as the model plugin asks)")
    label_smoothing = luigi.FloatParameter(description="weight of the uniform distribution mixed into "
                                                       "the training targets (0: none)")
    ema_momentum = luigi.FloatParameter(description="momentum of the moving average of the weights "
                                                    "that the exported model holds (0: none)")
    augment = luigi.ChoiceParameter(choices=list(AUGMENTS),  # no default: it changes what is learnt
                                    description="mirror half of each batch, shift each image by up to 2 "
                                                "pixels, mirror+shift, none, or auto: mirror where the "
                                                "dataset plugin says a mirror keeps the label")
    test_augment = luigi.ChoiceParameter(choices=list(TEST_AUGMENTS),  # the exported model depends on it
                                         description="predict from the mean of the logits of each image "
                                                     "and its mirror (validation, export and so the test "
                                                     "figure), none, or auto: mirror where training mirrors")

    def run_name(self) -> str:
        label = dataset_label(self.dataset, recursively_unfreeze(self.dataset_options))
        return f"{label}-{self.model}"

    def produce(self, folder: Path) -> dict[str, Any]:
        data = self.requires()
        meta = data.meta()
        train_count = meta["counts"]["train"]
        if self.batch_size > train_count:
            raise_batch_too_large(self.batch_size, train_count, data)
        augment = resolved_augment(self.augment, self.dataset)
        request = {
            "data_dir": str(data.folder()),
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
            "jit_compile": self.jit_compile,
            "augment": augment,
            "test_augment": resolved_test_augment(self.test_augment, augment),
            "label_smoothing": self.label_smoothing,
            "ema_momentum": self.ema_momentum,
        }
        return self.train_in_worker(request, folder)


def resolved_augment(choice: str, dataset: str) -> str:
    """none or mirror: auto mirrors where the dataset plugin declares ``MIRROR_KEEPS_LABEL = True``
    (read from its source, without importing it)."""
    if choice != "auto":
        return choice
    return "mirror" if registry.DATASETS.get(dataset).declared("MIRROR_KEEPS_LABEL") is True else "none"


def raise_batch_too_large(batch_size: int, count: int, data: PreprocessImages) -> None:
    raise TfpipeError(f"image.batch_size={batch_size} is larger than the {count} training "
                      f"samples of {data.run_name()} "
                      f"(image.validation_fraction={data.validation_fraction}); lower "
                      "image.batch_size or image.validation_fraction")


# ----- the stage's own process: python -m tasks.image.train REQUEST.json -----

EVAL_BATCH = 1000
# Validation samples at each checkpoint before the last: a fixed seeded choice, so every point of
# the curve is measured on the same samples at a fraction of the cost of the whole set (which
# took 10-13% of the default cnn's training time). The last step validates on the whole set.
VALIDATION_SUBSET = 2000


def work(request: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    from tasks import tf_runtime
    from tasks.image import stream
    from tasks.image.shards import verify
    from tasks.image.test_time import exported_model, predictor
    from tasks.onednn import onednn_record
    from tasks.tf_runtime import build_model, model_caller, start_tensorflow
    from tasks.training_loop import TrainingLoop, adam, compile_train_step
    tf = start_tensorflow(request["seed"], request["deterministic"], request.get("device"))
    strategy = tf_runtime.strategy()

    data_dir, out = Path(request["data_dir"]), Path(request["out_dir"])
    meta = json.loads((data_dir / "meta.json").read_text("utf-8"))
    verify(data_dir, meta)
    shape, record_size = meta["input_shape"], meta["record"]["bytes"]
    example = tf.zeros([1, *shape], tf.float32)

    with strategy.scope():  # variables are mirrored when the device policy has several replicas
        model, hparams = build_model(request["model"], meta, request["model_params"],
                                     "image_classifier")
        optimizer, ema_momentum = adam(request)
        call = model_caller(model)  # bare tf.Module models may not take `training`
        call(example, False)  # create the variables before restoring into them
        optimizer.build(model.trainable_variables)
    loop = TrainingLoop(out, model, optimizer, f"train {request['model']}",
                        request["checkpoint_every"], request["learning_rate"])

    total_steps, batch_size = request["steps"], request["batch_size"]
    # uint8 records stream from the shards; decoding and scaling happen in the compiled step.
    batches = stream.train_chunks(meta, data_dir, batch_size, request["seed"], loop.resumed_from,
                                  loop.chunk_sizes(loop.resumed_from, total_steps))

    smoothing = request.get("label_smoothing", 0.0)

    def forward(records):
        x, y = stream.decode(records, shape)
        loss, correct = batch_sums(call(x, True), y, smoothing)
        return loss, {"accuracy": correct}

    xla = tf_runtime.use_xla(request.get("jit_compile", "auto"), request["model"], strategy, model,
                             request["deterministic"])
    augment = request.get("augment", "none")
    train_step = compile_train_step(strategy, model, optimizer, loop.step,
                                    tf.TensorSpec([batch_size, record_size], tf.uint8), batch_size,
                                    forward, metrics=("accuracy",), jit_compile=xla,
                                    prepare=stream.augmentation(augment, shape, request["seed"]))

    test_augment = request.get("test_augment", "none")
    predict = predictor(call, test_augment)  # as the exported model predicts

    @tf.function(input_signature=[tf.TensorSpec([None, record_size], tf.uint8)])
    def eval_step(records):
        x, y = stream.decode(records, shape)
        return batch_sums(predict(x), y)

    everything = stream.eval_dataset(meta, data_dir, "val", EVAL_BATCH)
    val_count = meta["counts"]["val"]
    # The pipeline never sets "validation_subset"; tests and bench/validation_share.py do.
    subset_size = request.get("validation_subset", VALIDATION_SUBSET)
    subset = stream.records_subset(meta, data_dir, "val", subset_size, seed=0)
    if subset is not None:
        subset = [tf.constant(subset[i:i + EVAL_BATCH]) for i in range(0, len(subset), EVAL_BATCH)]

    def validate(final: bool) -> dict[str, float]:
        """Loss and accuracy on the whole validation set at the last step, on the subset before."""
        source, count = (everything, val_count) if final or subset is None else (subset, subset_size)
        loss_sum = correct = 0.0
        for records in source:
            batch_loss, batch_correct = eval_step(records)
            loss_sum += float(batch_loss)
            correct += float(batch_correct)
        return {"loss": loss_sum / count, "accuracy": correct / count, "samples": count}

    result = loop.run(train_step, batches, total_steps, validate, units_per_step=batch_size)
    result["exported"] = export(exported_model(model, shape, test_augment), out, example, predict)
    result["hparams"] = hparams
    result["parameters"] = int(sum(int(np.prod(v.shape)) for v in model.trainable_variables))
    result["device"] = tf_runtime.device_record()
    result["jit_compile"] = xla
    result["onednn"] = onednn_record()
    result["augment"] = augment
    result["test_augment"] = test_augment
    result["label_smoothing"] = smoothing
    result["ema_momentum"] = ema_momentum
    result["data"] = {"train": meta["counts"]["train"], "val": val_count,
                      "steps_per_epoch": stream.steps_per_epoch(meta["counts"]["train"],
                                                                batch_size),
                      "shuffle_buffer": stream.shuffle_buffer(meta)}
    return result


def batch_sums(logits, labels, smoothing: float = 0.0):
    """Summed cross-entropy of a batch's logits against its int labels, the targets mixed with
    `smoothing` of the uniform distribution over the classes, and its number of correct
    predictions."""
    import keras
    import tensorflow as tf

    if smoothing:
        targets = tf.one_hot(labels, tf.shape(logits)[-1], dtype=logits.dtype)
        loss = keras.losses.categorical_crossentropy(targets, logits, from_logits=True, label_smoothing=smoothing)
    else:
        loss = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
    hits = tf.equal(tf.argmax(logits, -1, output_type=tf.int32), labels)
    return tf.reduce_sum(loss), tf.reduce_sum(tf.cast(hits, tf.float32))


def export(model, out: Path, example, predict) -> list[str]:
    """SavedModel (loads without any tfpipe or plugin code) and, where possible, .keras. A bare
    tf.Module serves `predict(x)`."""
    import tensorflow as tf

    exported = []

    def save_saved_model(saved: Path) -> None:
        if hasattr(model, "export"):
            model.export(str(saved), verbose=False)
        else:  # a bare tf.Module: export its call as the serving endpoint
            spec = tf.TensorSpec([None, *example.shape[1:]], tf.float32)
            model.serve = tf.function(predict, input_signature=[spec])
            tf.saved_model.save(model, str(saved))

    # Saved under temporary names and renamed: a killed or disk-full save leaves no partial model.
    atomic.save_folder(out / "saved_model", save_saved_model)
    exported.append("saved_model")
    try:
        atomic.save_file(out / "model.keras", lambda path: model.save(str(path)))
        exported.append("model.keras")
    except OSError:
        raise  # disk full or unwritable: a failed run, not a model that cannot be saved as .keras
    except Exception as exc:  # noqa: BLE001 - subclassed models without get_config can't be saved
        emit("log", message=f"model.keras not written ({type(exc).__name__}: {exc}); "
                            "saved_model is")
    atomic.write_json(out / "export.json", {"formats": exported})
    return exported


if __name__ == "__main__":
    from tasks.protocol import main

    main(work)
