"""Base of tasks whose result depends on a model plugin (training on any path).

Kept apart from the image path's modules so a text task's fingerprint covers
only the code it runs.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import luigi
from luigi.freezing import recursively_unfreeze

from plugins import registry
from plugins.errors import TfpipeError
from tasks import devices
from tasks.base import PipelineTask, StageTask, library_versions
from tasks.onednn import CHOICES, onednn_env
from tasks.protocol import executor_name, executor_of, run_stage


def plugin_info(name: str) -> registry.PluginInfo:
    return registry.MODELS.get(name)


class ModelTask(PipelineTask):
    """A task whose result depends on a model plugin: its identity and code join the fingerprint."""

    model = luigi.Parameter(description="name of a tfpipe.models plugin")

    def follow_packages(self) -> list[str]:
        return [plugin_info(self.model).top_package]

    def code_modules(self) -> list[str]:
        return super().code_modules() + [plugin_info(self.model).module]

    def fingerprint_components(self) -> dict[str, Any]:
        components = super().fingerprint_components()
        components["plugin"] = plugin_info(self.model).identity()
        tf_version = library_versions()["tensorflow"] or "none"
        components["tensorflow"] = ".".join(tf_version.split(".")[:2])  # a minor upgrade may change results
        return components


class TrainingTask(ModelTask, StageTask):
    """A training stage: runs its TensorFlow worker under the chosen device policy.

    Where it trains does not change what is learnt: a model trained on GPU 1
    serves a request for the same model on the CPU. So the policy is not part
    of the fingerprint; the manifest records what was applied.
    """

    device = luigi.ListParameter(default=[], significant=False,
                                 description="tfpipe.devices policies, e.g. [\"gpu\", \"memory_growth\"]")
    device_options = luigi.DictParameter(default={}, significant=False,
                                         description="options of the device policies (ids, limit, fallback, ...)")
    # Like the device, oneDNN's kernels change rounding, not what is learnt.
    onednn = luigi.ChoiceParameter(choices=list(CHOICES), default="auto", significant=False,
                                   description="oneDNN's CPU kernels: auto (as the model plugin asks), on or off")

    def tensorflow_env(self) -> dict[str, str]:
        """What the TensorFlow process of this stage, and of the stages that use its model, needs in
        its environment: those stages then share one process (tasks/stage_server.py)."""
        return onednn_env(self.onednn, self.model)

    @property
    def resources(self) -> dict[str, int]:
        """One Luigi `gpu` resource per GPU this task will hold (see README: [resources] gpu); none
        where the executor's cluster hands out the GPUs (slurm)."""
        if not self.device:
            return {}
        try:
            if self.cluster_executor() is not None:
                return {}
            needed = devices.gpus_needed(list(self.device), recursively_unfreeze(self.device_options))
        except TfpipeError:
            return {}  # the same error is raised, with its message, when the task runs
        if not needed:
            return {}
        configured = luigi.configuration.get_config().getint("resources", "gpu", None)
        # Without [resources] gpu Luigi allows 1: ask for 1 so the task can still be scheduled.
        return {"gpu": min(needed, configured) if configured else 1}

    def cluster_executor(self) -> str | None:
        """The name of this stage's executor when its cluster hands out GPUs and workers (it has
        ``allocate_devices``: slurm); None when they are this machine's (local)."""
        executor, _ = executor_of(self)
        return executor_name(executor) if hasattr(executor, "allocate_devices") else None

    def train_in_worker(self, request: dict[str, Any], folder: Path) -> dict[str, Any]:
        """Hold the GPUs the policy hands out while the worker trains; return its result. Under an
        executor with a cluster (slurm) the policy's GPUs and workers are asked of the cluster
        instead, and the job uses those it is given."""
        options = recursively_unfreeze(self.device_options)
        cluster = self.cluster_executor()
        if cluster is not None:
            plan, needs = devices.planned_for_cluster(list(self.device), options, cluster)
            request["device"] = plan.request()
            return run_stage(self, request, folder, env={**plan.env, **self.tensorflow_env()}, needs=needs)
        slots = Path(self.workspace) / ".gpu-slots"
        with devices.applied(list(self.device), options, slots, self.task_id) as plan:
            request["device"] = plan.request()
            return run_stage(self, request, folder, env={**plan.env, **self.tensorflow_env()})


class EvaluationTask(StageTask):
    """Runs an evaluation worker on the trained model upstream (``requires()`` is the training
    task, whose own upstream holds the data)."""

    stage = "evaluate"

    def title(self) -> str:
        raise NotImplementedError

    def produce(self, folder: Path) -> dict[str, Any]:
        train = self.requires()
        request = {
            "data_dir": str(train.requires().folder()),
            "model_dir": str(train.folder()),
            "out_dir": str(folder),
            "title": self.title(),
        }
        return run_stage(self, request, folder, env=train.tensorflow_env())
