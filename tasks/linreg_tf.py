"""TensorFlow worker of FitLinearRegression: y = a*x + b with tf.GradientTape and SGD (subprocess).

Request: normalised x and y, learning_rate, steps, record_every. Result:
{"snapshots": [{"step", "a", "b", "loss"}...], "diverged_at": step or None, "seconds"}.
"""
from __future__ import annotations

import math
import time
from typing import Any

from tasks.tf_runtime import start_tensorflow
from tasks.worker import Progress, main


def fit(request: dict[str, Any]) -> dict[str, Any]:
    tf = start_tensorflow(seed=0, deterministic=False)
    import keras

    # float64 like the numpy twin, so the two agree to rounding.
    x = tf.constant(request["x"], dtype=tf.float64)
    y = tf.constant(request["y"], dtype=tf.float64)
    a = tf.Variable(0.0, dtype=tf.float64, name="a")
    b = tf.Variable(0.0, dtype=tf.float64, name="b")
    optimizer = keras.optimizers.SGD(learning_rate=request["learning_rate"])

    def loss_value():
        return 0.5 * tf.reduce_sum(tf.square(a * x + b - y))

    @tf.function
    def run_steps(count):
        """`count` steps, stopping at the first non-finite a, b or loss; returns steps done."""
        done = tf.constant(0)
        for _ in tf.range(count):
            with tf.GradientTape() as tape:
                loss = loss_value()
            optimizer.apply_gradients(zip(tape.gradient(loss, [a, b]), [a, b]))
            done += 1
            if not tf.reduce_all(tf.math.is_finite(tf.stack([a, b, loss_value()]))):
                break
        return done

    steps, every = request["steps"], request["record_every"]
    progress = Progress(steps, "linear regression (tf)")
    snapshots, current, diverged_at = [], 0, None
    started = time.perf_counter()
    while current < steps:
        chunk = min(every - current % every, steps - current)
        done = int(run_steps(tf.constant(chunk)))
        current += done
        values = {"a": float(a.numpy()), "b": float(b.numpy()), "loss": float(loss_value())}
        if not all(math.isfinite(value) for value in values.values()):
            diverged_at = current
            break
        snapshots.append({"step": current, **values})
        loss = values["loss"]
        progress.update(current, loss=loss)
    return {"snapshots": snapshots, "diverged_at": diverged_at,
            "seconds": round(time.perf_counter() - started, 3)}


if __name__ == "__main__":
    main(fit)
