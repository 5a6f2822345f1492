"""Generation stage of the text path (the work runs in tasks.text_generate_tf).

Its own parameters (temperatures, length, sample_seed, seed_length) are the
only ones generation adds, so changing them reruns generation alone.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import luigi
from luigi.util import requires

from tasks.base import PipelineTask
from tasks.child import run_worker
from tasks.errors import TfpipeError
from tasks.text_data import corpus_label
from tasks.text_prep import check_temperatures
from tasks.text_train import TrainTextModel

DEFAULT_TEMPERATURES = (0.2, 0.5, 1.0, 1.2)


@requires(TrainTextModel)
class GenerateText(PipelineTask):
    """Reads model.keras, vocab.json and the held-out ids; writes samples.txt and samples.json:
    `length` characters per temperature, after a seeded seed passage of held-out text."""

    stage = "generate"
    worker_module = "tasks.text_generate_tf"

    temperatures = luigi.ListParameter(default=DEFAULT_TEMPERATURES, description="e.g. '[0.5, 1.0]'")
    length = luigi.IntParameter(default=400, description="characters generated per temperature")
    sample_seed = luigi.IntParameter(default=0, description="seed of the seed passage and the sampling")
    seed_length = luigi.IntParameter(default=80, description="characters of the seed passage")

    def run_name(self) -> str:
        return f"{corpus_label(self.corpus)}-{self.model}"

    def produce(self, folder: Path) -> dict[str, Any]:
        if self.length < 1 or self.seed_length < 1:
            raise TfpipeError(f"length={self.length} and seed_length={self.seed_length} must be at least 1")
        train = self.requires()
        request = {
            "data_dir": str(train.requires().folder()),
            "model_dir": str(train.folder()),
            "out_dir": str(folder),
            "temperatures": check_temperatures(self.temperatures, "temperatures"),
            "length": self.length,
            "sample_seed": self.sample_seed,
            "seed_length": self.seed_length,
        }
        return run_worker(self, self.worker_module, request, folder)
