"""The TensorFlow basics as runs: LinearRegression and GraphSpeedup."""
from __future__ import annotations

import logging
from typing import Any

import luigi

from pipelines.run_task import RunTask
from pipelines.summary import (
    graph_summary,
    linreg_summary,
)
from tasks.basics.graph_speedup import TimeGraphSpeedup
from tasks.basics.linreg import FitLinearRegression

logger = logging.getLogger(__name__)


class LinearRegression(RunTask):
    """y = a*x + b by gradient descent, numpy by hand vs tf.GradientTape + SGD (tasks.basics.linreg)."""

    learning_rate = luigi.FloatParameter(default=1e-3)
    steps = luigi.IntParameter(default=10000)
    record_every = luigi.IntParameter(default=2000)
    x = luigi.OptionalListParameter(default=None, description="inputs (default: the years 2013-2017)")
    y = luigi.OptionalListParameter(default=None, description="targets (default: the 2013-2017 prices)")

    def run_name(self) -> str:
        return "linear-regression"

    def requires(self) -> FitLinearRegression:
        data = {key: getattr(self, key) for key in ("x", "y") if getattr(self, key) is not None}
        return FitLinearRegression(workspace=self.root(), learning_rate=self.learning_rate, steps=self.steps,
                                   record_every=self.record_every, **data)

    def summary(self) -> dict[str, Any]:
        return {"runs": [linreg_summary(self.requires())]}


class GraphSpeedup(RunTask):
    """Eager vs tf.function call times of a shallow and a deep Dense model (tasks.basics.graph_speedup)."""

    batch_size = luigi.IntParameter(default=60)
    repeats = luigi.IntParameter(default=100)
    warmup = luigi.IntParameter(default=5)

    def run_name(self) -> str:
        return "graph-speedup"

    def requires(self) -> TimeGraphSpeedup:
        return TimeGraphSpeedup(workspace=self.root(), batch_size=self.batch_size, repeats=self.repeats,
                                warmup=self.warmup)

    def summary(self) -> dict[str, Any]:
        return {"runs": [graph_summary(self.requires())]}
