"""Training stage of the image path (the work runs in tasks.train_tf, a TF subprocess)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import luigi
from luigi.util import requires

from tasks.data import PreprocessImages
from tasks.model_task import TrainingTask


@requires(PreprocessImages)
class TrainImageModel(TrainingTask):
    """Reads the preprocessed splits; trains the model plugin; writes checkpoints, history,
    TensorBoard logs and the exported model. Resumes from its newest checkpoint."""

    stage = "train"
    worker_module = "tasks.train_tf"

    model_params = luigi.DictParameter(default={}, description="overrides of the plugin's hyper-parameters")
    steps = luigi.IntParameter(default=12000)
    batch_size = luigi.IntParameter(default=50)
    learning_rate = luigi.FloatParameter(default=1e-3)
    lr_schedule = luigi.ChoiceParameter(choices=["constant", "cosine"], default="constant",
                                        description="cosine: decay to learning_rate/10 by the last step")
    seed = luigi.IntParameter(default=1)
    # How often to checkpoint and whether ops are deterministic do not change what is learnt.
    checkpoint_every = luigi.IntParameter(default=500, significant=False)
    deterministic = luigi.BoolParameter(default=False, significant=False)

    def run_name(self) -> str:
        return f"{self.dataset}-{self.model}"

    def produce(self, folder: Path) -> dict[str, Any]:
        request = {
            "data_dir": str(self.requires().folder()),
            "out_dir": str(folder),
            "model": self.model,
            "model_params": self.significant_params()["model_params"],
            "steps": self.steps,
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
            "lr_schedule": self.lr_schedule,
            "checkpoint_every": self.checkpoint_every,
            "seed": self.seed,
            "deterministic": self.deterministic,
        }
        return self.train_in_worker(request, folder)
