"""Linear regression stage: y = a*x + b fitted twice, numpy by hand and TensorFlow (tasks.linreg_tf)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import luigi

from tasks import atomic
from tasks import linreg_math as lm
from tasks.base import PipelineTask
from tasks.basics_plots import linreg_png
from tasks.child import run_worker
from tasks.errors import TfpipeError

# Agreement expected between the two methods (both float64; Keras keeps lr as float32).
TOLERANCE = 1e-6


class FitLinearRegression(PipelineTask):
    """Reads nothing upstream; min-max scales `x`/`y`, fits with hand-written numpy gradients and
    with tf.GradientTape + SGD; writes fit.json (a, b, loss every `record_every` steps for both,
    slope per year in original units) and linreg.png. Non-finite data or a diverging fit fails
    with the step it diverged at; nothing is written as complete."""

    stage = "linreg"
    worker_module = "tasks.linreg_tf"

    x = luigi.ListParameter(default=list(lm.YEARS), description="inputs, e.g. years")
    y = luigi.ListParameter(default=list(lm.PRICES), description="targets, e.g. prices")
    learning_rate = luigi.FloatParameter(default=1e-3)
    steps = luigi.IntParameter(default=10000)
    record_every = luigi.IntParameter(default=2000)

    def run_name(self) -> str:
        return "linreg"

    def produce(self, folder: Path) -> dict[str, Any]:
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
        result = run_worker(self, self.worker_module, {
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
