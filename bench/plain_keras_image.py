"""The plain alternative: a hand-written Keras script for the MNIST-family protocol.

python bench/plain_keras_image.py --data /usr/share/datasets/fashion-mnist --model cnn --steps 1000

Loads the IDX files with numpy, trains with model.fit (Adam, batch 50, 50 steps per
compiled call, XLA off: on a 2-core CPU that is the fastest for cnn; for mlp XLA is faster:
--jit-compile), evaluates on the test set, saves the model where --save says (a .keras file)
and prints one JSON line with accuracy and throughput. train_seconds is the time of model.fit
alone (tracing included); the step rates both sides reach in steady state are compared by
bench/train_step_rate.py, the whole job's wall time by bench/end_to_end.py.
"""
import argparse
import gzip
import json
import time
from pathlib import Path

import numpy as np


def load(folder: Path, name: str, offset: int) -> np.ndarray:
    with gzip.open(folder / name) as handle:
        return np.frombuffer(handle.read(), np.uint8, offset=offset)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--model", choices=["mlp", "cnn"], required=True)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--lr-schedule", choices=["constant", "cosine"], default="constant",
                        help="cosine: decay to a tenth of the learning rate by the last step (tfpipe's default)")
    parser.add_argument("--ema-momentum", type=float, default=0.0,
                        help="Keras's moving average of the weights (Adam use_ema; fit puts it into the model at "
                             "the end); 0: none")
    parser.add_argument("--validation-fraction", type=float, default=0.1)
    parser.add_argument("--steps-per-execution", type=int, default=50)
    parser.add_argument("--jit-compile", action="store_true")
    parser.add_argument("--save", type=Path, help="save the trained model here (.keras), as a real job would")
    args = parser.parse_args()

    import keras
    from keras import layers

    keras.utils.set_random_seed(1)
    x = load(args.data, "train-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28, 1).astype("float32") / 255
    y = load(args.data, "train-labels-idx1-ubyte.gz", 8).astype("int32")
    x_test = load(args.data, "t10k-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28, 1).astype("float32") / 255
    y_test = load(args.data, "t10k-labels-idx1-ubyte.gz", 8).astype("int32")
    held = max(1, round(args.validation_fraction * len(x)))
    x, y = x[held:], y[held:]  # same amount of training data as tfpipe

    if args.model == "mlp":
        body = [layers.Flatten(), layers.Dense(100, activation="relu")]
    else:
        body = [layers.Conv2D(32, 5, padding="same", activation="relu"), layers.MaxPooling2D(2),
                layers.Conv2D(64, 5, padding="same", activation="relu"), layers.MaxPooling2D(2),
                layers.Flatten(), layers.Dense(1024, activation="relu")]
    model = keras.Sequential([keras.Input((28, 28, 1)), *body, layers.Dense(10)])
    rate = args.learning_rate
    if args.lr_schedule == "cosine":
        rate = keras.optimizers.schedules.CosineDecay(rate, decay_steps=args.steps, alpha=0.1)
    optimizer = keras.optimizers.Adam(rate, use_ema=args.ema_momentum > 0, ema_momentum=args.ema_momentum)
    model.compile(optimizer=optimizer,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"],
                  steps_per_execution=args.steps_per_execution, jit_compile=args.jit_compile)
    steps_per_epoch = len(x) // args.batch_size
    epochs = -(-args.steps // steps_per_epoch)
    # Exactly `steps` batches: whole epochs, the last one cut short.
    dataset = (__import__("tensorflow").data.Dataset.from_tensor_slices((x, y)).cache()
               .shuffle(len(x), seed=1).batch(args.batch_size, drop_remainder=True).repeat().take(args.steps)
               .prefetch(-1))
    started = time.perf_counter()
    model.fit(dataset, epochs=1, steps_per_epoch=args.steps, verbose=0)
    seconds = time.perf_counter() - started
    loss, accuracy = model.evaluate(x_test, y_test, batch_size=1000, verbose=0)
    if args.save:
        model.save(args.save)
    print(json.dumps({"model": args.model, "steps": args.steps, "epochs_touched": epochs,
                      "test_accuracy": accuracy, "test_loss": loss, "train_seconds": seconds,
                      "samples_per_s": args.steps * args.batch_size / seconds}))


if __name__ == "__main__":
    main()
