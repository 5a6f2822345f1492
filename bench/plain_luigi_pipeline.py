"""The plain alternative for the no-op benchmark: the same graph in plain Luigi.

As an expert writes it: LocalTarget outputs, no fingerprints, heavy libraries
imported inside run() so a rerun with nothing to do imports none of them. Work
is tiny; only the no-op rerun is timed.
luigi --module plain_luigi_pipeline PlainRun --root DIR --local-scheduler
"""
import json
from pathlib import Path

import luigi


class Step(luigi.Task):
    root = luigi.Parameter()
    stage = "step"

    def output(self):
        return luigi.LocalTarget(str(Path(self.root) / f"{self.stage}.json"))

    def run(self):
        import numpy as np  # only when there is work: a no-op rerun never imports it

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
