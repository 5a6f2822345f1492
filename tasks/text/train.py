"""Training stage of the text path (its work() runs in its own TensorFlow process)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import luigi
from luigi.util import requires

from plugins.errors import TfpipeError
from tasks import atomic
from tasks.model_task import TrainingTask
from tasks.text.download import corpus_label
from tasks.text.prep import check_window
from tasks.text.preprocess import PreprocessText


@requires(PreprocessText)
class TrainTextModel(TrainingTask):
    """Reads the encoded text; trains a character language model plugin to predict the next
    character at every position of a window, validating on the validation part (never the
    held-out part evaluation reports on); writes checkpoints, history.json, TensorBoard
    logs, model.keras and vocab.json. Resumes from its newest checkpoint."""

    stage = "train"

    model_params = luigi.DictParameter(description="overrides of the plugin's hyper-parameters")
    window = luigi.IntParameter(description="characters per training sequence")
    steps = luigi.IntParameter(description="optimizer steps (batches)")
    batch_size = luigi.IntParameter(description="windows per batch")
    learning_rate = luigi.FloatParameter(description="Adam learning rate")
    lr_schedule = luigi.ChoiceParameter(choices=["constant", "cosine"],
                                        description="cosine: decay to learning_rate/10 by the last step")
    seed = luigi.IntParameter(description="seed of the initial weights and the batch order")
    weight_decay = luigi.FloatParameter(description="decoupled weight decay: each step shrinks the "
                                                    "weights by weight_decay x the learning rate")
    ema_momentum = luigi.FloatParameter(description="momentum of the moving average of the weights "
                                                    "that the exported model holds (0: none)")
    checkpoint_every = luigi.IntParameter(significant=False, description="steps between checkpoints")
    deterministic = luigi.BoolParameter(default=False, significant=False)
    jit_compile = luigi.ChoiceParameter(choices=["auto", "always", "never"], default="auto", significant=False,
                                        description="XLA-compile the training step (auto: as the model plugin asks)")

    def run_name(self) -> str:
        return f"{corpus_label(self.corpus, self.corpus_options)}-{self.model}"

    def check_settings(self) -> None:
        """Refuse, before anything runs, a window or batch_size the training text cannot fill,
        when its length is known cheaply (PreprocessText.known_train_chars)."""
        preprocess = self.requires()
        known = preprocess.known_train_chars()
        if known is None:
            return
        chars, exact = known
        try:
            check_window(chars, self.window, self.batch_size, at_most=not exact)
        except TfpipeError:
            if exact:
                raise
            # Too short even by its size in bytes: decode it, so that a data error (an empty or
            # binary file) is what the user hears first, and the count is exact. Rare: no cost
            # to a run that fits.
            check_window(preprocess.decoded_train_chars(), self.window, self.batch_size)
            raise

    def produce(self, folder: Path) -> dict[str, Any]:
        data = self.requires().folder()
        meta = json.loads((data / "meta.json").read_text("utf-8"))
        check_window(meta["counts"]["train"], self.window, self.batch_size)  # fail before starting TF
        request = {
            "data_dir": str(data),
            "out_dir": str(folder),
            "model": self.model,
            "model_params": self.significant_params()["model_params"],
            "window": self.window,
            "steps": self.steps,
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
            "lr_schedule": self.lr_schedule,
            "checkpoint_every": self.checkpoint_every,
            "seed": self.seed,
            "weight_decay": self.weight_decay,
            "ema_momentum": self.ema_momentum,
            "deterministic": self.deterministic,
            "jit_compile": self.jit_compile,
        }
        return self.train_in_worker(request, folder)


# ----- the stage's own process: python -m tasks.text.train REQUEST.json -----

CLIP_NORM = 5.0  # recurrent nets occasionally spike; clipping keeps one bad batch from diverging


def work(request: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    from tasks import tf_runtime
    from tasks.batching import batch_indices
    from tasks.onednn import onednn_record
    from tasks.text.prep import check_window
    from tasks.text.scoring import KIND, HeldoutScorer
    from tasks.tf_runtime import build_model, start_tensorflow
    from tasks.training_loop import TrainingLoop, adam, compile_train_step
    tf = start_tensorflow(request["seed"], request["deterministic"], request.get("device"))

    strategy = tf_runtime.strategy()

    data_dir, out = Path(request["data_dir"]), Path(request["out_dir"])
    meta = json.loads((data_dir / "meta.json").read_text("utf-8"))
    vocab = json.loads((data_dir / "vocab.json").read_text("utf-8"))
    ids = np.load(data_dir / "train_ids.npy").astype(np.int32)  # stored compactly (uint16)
    window, batch_size, total_steps = request["window"], request["batch_size"], request["steps"]
    starts_count = check_window(len(ids), window, batch_size)
    text = tf.constant(ids)  # the whole text lives in memory; the step gathers its windows

    with strategy.scope():  # variables are mirrored when the device policy has several replicas
        model, hparams = build_model(request["model"], {"vocab_size": meta["vocab_size"]},
                                     request["model_params"], KIND)
        optimizer, ema_momentum = adam(request, clipnorm=CLIP_NORM)
        model(tf.zeros((1, window), tf.int32))  # create the variables before restoring into them
        optimizer.build(model.trainable_variables)
    loop = TrainingLoop(out, model, optimizer, f"train {request['model']}", request["checkpoint_every"],
                        request["learning_rate"])

    # Each sample is a window start; the order is a function of (seed, step) so resume is exact.
    starts = batch_indices(starts_count, batch_size, request["seed"], loop.resumed_from, total_steps)
    # One chunk of consecutive steps per compiled call (tasks.training_loop); none when resumed at the end.
    sizes = loop.chunk_sizes(loop.resumed_from, total_steps)
    batches = np.split(starts, np.cumsum(sizes)[:-1]) if sizes else []
    offsets = tf.range(window + 1, dtype=tf.int32)

    def forward(start):
        sequences = tf.gather(text, start[:, None] + offsets[None, :])
        x, y = sequences[:, :-1], sequences[:, 1:]  # the next character at every position
        logits = model(x, training=True)
        loss = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
        correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), y), tf.float32))
        return loss, {"accuracy": correct}

    xla = tf_runtime.use_xla(request.get("jit_compile", "auto"), request["model"], strategy, model,
                             request["deterministic"])
    train_step = compile_train_step(strategy, model, optimizer, loop.step, tf.TensorSpec([batch_size], tf.int32),
                                    batch_size * window, forward, metrics=("accuracy",), jit_compile=xla)

    # The validation part, not heldout_ids.npy: evaluation reports on that, and nothing tuned
    # on the validation curve may have seen it.
    validate = HeldoutScorer(model, np.load(data_dir / "valid_ids.npy"))
    result = loop.run(train_step, batches, total_steps, validate, units_per_step=batch_size * window,
                      unit="chars")
    # Saved under a temporary name and renamed: a killed or disk-full save leaves no partial model.
    atomic.save_file(out / "model.keras", lambda path: model.save(str(path)))
    atomic.write_json(out / "vocab.json", vocab)
    result["exported"] = ["model.keras"]
    result["hparams"] = hparams
    result["parameters"] = int(sum(int(np.prod(v.shape)) for v in model.trainable_variables))
    result["device"] = tf_runtime.device_record()
    result["jit_compile"] = xla
    result["weight_decay"] = request.get("weight_decay", 0.0)
    result["ema_momentum"] = ema_momentum
    result["onednn"] = onednn_record()
    result["final_learning_rate"] = float(optimizer.learning_rate)  # where the schedule ended
    return result


if __name__ == "__main__":
    from tasks.protocol import main

    main(work)
