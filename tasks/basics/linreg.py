"""Linear regression stage: y = a*x + b fitted twice, numpy by hand and TensorFlow in work()."""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import luigi

from plugins.errors import TfpipeError
from tasks import atomic
from tasks.base import PipelineTask
from tasks.protocol import Progress, run_stage

# Agreement expected between the two methods (both float64; Keras keeps lr as float32).
TOLERANCE = 1e-6


# The tutorial's data: house prices of the years 2013-2017.
YEARS = (2013.0, 2014.0, 2015.0, 2016.0, 2017.0)
PRICES = (12000.0, 14000.0, 15000.0, 16500.0, 17500.0)


class FitLinearRegression(PipelineTask):
    """Reads nothing upstream; min-max scales `x`/`y`, fits with hand-written numpy gradients and
    with tf.GradientTape + SGD; writes fit.json (a, b, loss every `record_every` steps for both,
    slope per year in original units) and linreg.png. Non-finite data or a diverging fit fails
    with the step it diverged at; nothing is written as complete."""

    stage = "linreg"

    x = luigi.ListParameter(default=list(YEARS), description="inputs, e.g. years")
    y = luigi.ListParameter(default=list(PRICES), description="targets, e.g. prices")
    learning_rate = luigi.FloatParameter(default=1e-3)
    steps = luigi.IntParameter(default=10000)
    record_every = luigi.IntParameter(default=2000)

    def run_name(self) -> str:
        return "linreg"

    def produce(self, folder: Path) -> dict[str, Any]:
        from tasks.basics import linreg_math as lm  # numpy stays out of a no-op rerun
        from tasks.basics.plots import linreg_png

        if self.steps <= 0 or self.record_every <= 0 or not self.learning_rate > 0:
            raise TfpipeError(f"steps ({self.steps}), record_every ({self.record_every}) and learning_rate "
                              f"({self.learning_rate}) must all be greater than 0")
        try:
            xs, ys = lm.check_data(self.x, self.y)
        except lm.BadInput as exc:
            raise TfpipeError(f"linear regression data: {exc}") from exc
        x_norm, x_lo, x_hi = lm.min_max(xs)
        y_norm, y_lo, y_hi = lm.min_max(ys)
        numpy_fit = lm.fit_numpy(x_norm, y_norm, self.learning_rate, self.steps, self.record_every)
        result = run_stage(self, {
            "x": x_norm.tolist(), "y": y_norm.tolist(), "learning_rate": self.learning_rate,
            "steps": self.steps, "record_every": self.record_every}, folder)
        tf_fit = lm.Fit(result["snapshots"], result["diverged_at"])
        diverged = {name: fit.diverged_at for name, fit in (("numpy", numpy_fit), ("tensorflow", tf_fit))
                    if fit.diverged_at is not None}
        if diverged:
            where = ", ".join(f"{name} at step {step}" for name, step in diverged.items())
            raise TfpipeError(f"linear regression diverged ({where}): a, b or the loss stopped being finite "
                              f"with learning_rate={self.learning_rate}; lower --learning-rate and rerun")
        difference = lm.compare(numpy_fit, tf_fit)
        if not difference <= TOLERANCE:
            raise TfpipeError(f"numpy and TensorFlow fits disagree by {difference:g} (> {TOLERANCE:g}); "
                              f"see {folder / 'request.json'}")
        lines = {name: lm.to_original_units(fit.snapshots[-1]["a"], fit.snapshots[-1]["b"], (x_lo, x_hi),
                                            (y_lo, y_hi))
                 for name, fit in (("numpy", numpy_fit), ("tensorflow", tf_fit))}
        record = {
            "numpy": numpy_fit.snapshots,
            "tensorflow": tf_fit.snapshots,
            "max_abs_difference": difference,
            "original_units": {name: {"slope_per_year": s, "intercept": i} for name, (s, i) in lines.items()},
            "tf_seconds": result["seconds"],
            "plot": str(folder / "linreg.png"),
        }
        atomic.write_json(folder / "fit.json", record)
        linreg_png(x_norm.tolist(), y_norm.tolist(), {"numpy": numpy_fit.snapshots, "tensorflow": tf_fit.snapshots},
                   {"x": xs.tolist(), "y": ys.tolist(), "lines": lines}, folder / "linreg.png")
        return json.loads(json.dumps(record))


# ----- the stage's own process: python -m tasks.basics.linreg REQUEST.json -----

def work(request: dict[str, Any]) -> dict[str, Any]:
    from tasks.tf_runtime import start_tensorflow
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
    from tasks.protocol import main

    main(work)
