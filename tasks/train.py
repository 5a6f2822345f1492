"""Training stage of the image path (the work runs in tasks.train_tf, a TF subprocess)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import luigi
from luigi.freezing import recursively_unfreeze
from luigi.util import requires

from tasks import devices
from tasks.child import run_worker
from tasks.data import PreprocessImages
from tasks.errors import TfpipeError
from tasks.model_task import ModelTask


@requires(PreprocessImages)
class TrainImageModel(ModelTask):
    """Reads the preprocessed splits; trains the model plugin; writes checkpoints, history,
    TensorBoard logs and the exported model. Resumes from its newest checkpoint."""

    stage = "train"
    worker_module = "tasks.train_tf"

    model_params = luigi.DictParameter(default={}, description="overrides of the plugin's hyper-parameters")
    steps = luigi.IntParameter(default=6000)
    batch_size = luigi.IntParameter(default=50)
    learning_rate = luigi.FloatParameter(default=1e-3)
    seed = luigi.IntParameter(default=1)
    # How often to checkpoint and whether ops are deterministic do not change what is learnt.
    checkpoint_every = luigi.IntParameter(default=500, significant=False)
    deterministic = luigi.BoolParameter(default=False, significant=False)
    # Where it trains does not change what is learnt: a model trained on GPU 1 serves a
    # request for the same model on the CPU. Recorded in the manifest instead.
    device = luigi.ListParameter(default=[], significant=False,
                                 description="tfpipe.devices policies, e.g. [\"gpu\", \"memory_growth\"]")
    device_options = luigi.DictParameter(default={}, significant=False,
                                         description="options of the device policies (ids, limit, fallback, ...)")

    @property
    def resources(self) -> dict[str, int]:
        """One Luigi `gpu` resource per GPU this task will hold (see README: [resources] gpu)."""
        try:
            needed = devices.gpus_needed(list(self.device), recursively_unfreeze(self.device_options))
        except TfpipeError:
            return {}  # the same error is raised, with its message, when the task runs
        if not needed:
            return {}
        configured = luigi.configuration.get_config().getint("resources", "gpu", None)
        # Without [resources] gpu Luigi allows 1: ask for 1 so the task can still be scheduled.
        return {"gpu": min(needed, configured) if configured else 1}

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
            "checkpoint_every": self.checkpoint_every,
            "seed": self.seed,
            "deterministic": self.deterministic,
        }
        slots = Path(self.workspace) / ".gpu-slots"
        options = recursively_unfreeze(self.device_options)
        with devices.applied(list(self.device), options, slots, self.task_id) as plan:
            request["device"] = plan.request()
            result = run_worker(self, self.worker_module, request, folder, env=plan.env)
        return result
