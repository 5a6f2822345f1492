"""The plain alternative for the no-op benchmark: the same graph in plain Luigi.

Typical hand-written shape: TensorFlow imported at module level, LocalTarget
outputs, no fingerprints. Work is tiny; only the no-op rerun is timed.
luigi --module plain_luigi_pipeline PlainRun --root DIR --local-scheduler
"""
import json
from pathlib import Path

import luigi
import numpy as np
import tensorflow as tf  # noqa: F401  the usual top-of-file import the benchmark compares against


class Step(luigi.Task):
    root = luigi.Parameter()
    stage = "step"

    def output(self):
        return luigi.LocalTarget(str(Path(self.root) / f"{self.stage}.json"))

    def run(self):
        with self.output().temporary_path() as path:
            Path(path).write_text(json.dumps({"stage": self.stage, "value": float(np.random.rand())}))


class Download(Step):
    stage = "download"


class Preprocess(Step):
    stage = "preprocess"

    def requires(self):
        return Download(root=self.root)


class Train(Step):
    stage = "train"

    def requires(self):
        return Preprocess(root=self.root)


class Evaluate(Step):
    stage = "evaluate"

    def requires(self):
        return Train(root=self.root)


class PlainRun(luigi.WrapperTask):
    root = luigi.Parameter()

    def requires(self):
        return Evaluate(root=self.root)
