"""A character language model trained in a plain Keras loop, outside the pipeline: a second
opinion on the text path's validation figure, and a quick way to screen model sizes.

    python bench/char_model_plain.py --corpus nietzsche.txt                 # the text defaults: LSTM 256, text.steps
    python bench/char_model_plain.py --corpus nietzsche.txt --units 384 --steps 2100
    python bench/char_model_plain.py --corpus nietzsche.txt --layers 2 --steps 1725

The text is split as the pipeline splits it (lower-cased; the last 5% held out, the 5% before it
for validation), and the model is the lstm/gru plugin's shape (embedding, recurrent layers,
dropout, logits; with the lstm plugin's default input dropout, SpatialDropout1D on the
embedding). Training draws random window starts (with replacement, seeded by the step),
Adam with gradients clipped to norm 5, the text path's decoupled weight decay and the
pipeline's cosine schedule (to a tenth); no moving average of the weights. The
figures are scored by the pipeline's own HeldoutScorer (16 streams, the state carried), so they
read like TextRun's: validation every --every steps, held-out once at the end. Its initial
weights and batches differ from the pipeline's: comparing the two says how far one seed moves
the result. Training time is wall time of the steps alone (scoring left out).
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from machine import machine  # noqa: E402

from pipelines import settings  # noqa: E402 - the declared defaults, no TensorFlow
from plugins.models import lstm  # noqa: E402 - its DEFAULTS; Keras is imported only by build()

CALL = 25  # steps per compiled call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, required=True, help="a UTF-8 text file (Nietzsche)")
    parser.add_argument("--cell", choices=["lstm", "gru"], default="lstm")
    text = {key: settings.get(f"text.{key}").default
            for key in ("steps", "batch_size", "window", "learning_rate", "weight_decay")}
    for name, default in (("units", lstm.DEFAULTS["units"]), ("layers", 1),
                          ("embedding-dim", lstm.DEFAULTS["embedding_dim"]), ("steps", text["steps"]),
                          ("batch-size", text["batch_size"]), ("window", text["window"]), ("every", 400),
                          ("seed", 1), ("threads", 0)):
        parser.add_argument(f"--{name}", type=int, default=default)
    parser.add_argument("--dropout", type=float, default=lstm.DEFAULTS["dropout"],
                        help="on the recurrent outputs, as the lstm plugin's dropout")
    parser.add_argument("--input-dropout", type=float, default=lstm.DEFAULTS["input_dropout"],
                        help="SpatialDropout1D on the embedding, as the lstm plugin's input_dropout (0: none)")
    parser.add_argument("--weight-decay", type=float, default=text["weight_decay"],
                        help="as text.weight_decay (0: none)")
    parser.add_argument("--learning-rate", type=float, default=text["learning_rate"])
    args = parser.parse_args()
    if args.steps % CALL:
        parser.error(f"--steps must be a multiple of {CALL}")

    import keras
    import numpy as np
    import tensorflow as tf

    from tasks.text.prep import build_vocab, encode, normalise, split_text
    from tasks.text.scoring import HeldoutScorer

    if args.threads:  # e.g. two screens side by side, one core each
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    print(f"machine: {machine()}")
    print(f"settings: {vars(args)}")
    text = normalise(args.corpus.read_text("utf-8"), lowercase=True)
    vocab = build_vocab(text)
    train, valid, held = split_text(encode(text, vocab), validation=0.05, holdout=0.05)

    tf.random.set_seed(args.seed)
    layers = keras.layers
    recurrent = {"lstm": layers.LSTM, "gru": layers.GRU}[args.cell]
    stack = [keras.Input((None,), dtype="int32"), layers.Embedding(len(vocab), args.embedding_dim)]
    if args.input_dropout:
        stack.append(layers.SpatialDropout1D(args.input_dropout))
    for _ in range(args.layers):
        stack.append(recurrent(args.units, return_sequences=True))
        stack.append(layers.Dropout(args.dropout))
    model = keras.Sequential([*stack, layers.Dense(len(vocab))])
    rate = keras.optimizers.schedules.CosineDecay(args.learning_rate, args.steps, alpha=0.1)
    optimizer = keras.optimizers.Adam(rate, clipnorm=5.0, weight_decay=args.weight_decay or None)
    text_tensor, starts = tf.constant(train), len(train) - args.window - 1
    offsets = tf.range(args.window + 1)

    @tf.function
    def steps(first):
        def body(i, total):
            start = tf.random.stateless_uniform([args.batch_size], seed=tf.stack([first + i, args.seed]),
                                                maxval=starts, dtype=tf.int32)
            windows = tf.gather(text_tensor, start[:, None] + offsets[None])
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
                    labels=windows[:, 1:], logits=model(windows[:, :-1], training=True)))
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            return i + 1, total + loss
        return tf.while_loop(lambda i, _: i < CALL, body, [tf.constant(0), tf.constant(0.0)])[1] / CALL

    validation = HeldoutScorer(model, valid)
    chars, seconds = args.batch_size * args.window, 0.0
    print(f"parameters: {sum(int(np.prod(v.shape)) for v in model.trainable_variables)}")
    for first in range(0, args.steps, CALL):
        started = time.perf_counter()
        loss = float(steps(tf.constant(first)))
        if first:  # the first call traces: left out of the time
            seconds += time.perf_counter() - started
        done = first + CALL
        if done % args.every == 0 or done == args.steps:
            rate_text = f", {(done - CALL) * chars / seconds:,.0f} chars/s" if seconds else ""
            print(f"step {done}: training {loss / math.log(2):.3f} bits/char (dropout on), "
                  f"validation {validation()['bits_per_char']:.3f}{rate_text}", flush=True)
    print(f"final: validation {validation()['bits_per_char']:.4f} bits/char, held-out "
          f"{HeldoutScorer(model, held)()['bits_per_char']:.4f}, {seconds:.0f} s of training "
          f"(tracing left out)")


if __name__ == "__main__":
    main()
