"""`multi_worker`: tf.distribute.MultiWorkerMirroredStrategy across processes or hosts.

Options: ``workers`` (["host:port", ...], the same list on every worker) and
``index`` (this worker's position in it) become TF_CONFIG. Run the same
pipeline on every host with its own index; worker 0 is the chief. With no
``workers``, a TF_CONFIG already in the environment (a cluster manager's) is used.
Under the slurm executor neither is given: the job runs one worker per Slurm task
and builds TF_CONFIG from Slurm's environment (plugins/executors/slurm_workers.py).
"""
from __future__ import annotations

import json
import os
from typing import Any

from plugins.errors import TfpipeError

KIND = "device_policy"
DEFAULTS: dict[str, Any] = {"workers": None, "index": None}
CONFLICTS = ("mirrored",)
MULTI_WORKER = True  # runs as several processes: an executor with a cluster starts one per task


def tf_config(workers: list[str], index: int) -> str:
    return json.dumps({"cluster": {"worker": list(workers)}, "task": {"type": "worker", "index": index}})


def environment(options: dict[str, Any], gpu_ids: list[str] | None) -> dict[str, str]:
    workers, index = options.get("workers"), options.get("index")
    if not workers:
        if "TF_CONFIG" in os.environ:
            return {}
        raise TfpipeError("device policy multi_worker needs the option workers (['host:port', ...]) "
                          "and index (this worker's position), or TF_CONFIG in the environment")
    if not isinstance(workers, (list, tuple)) or not all(isinstance(w, str) and ":" in w for w in workers):
        raise TfpipeError(f"device option workers must be a list of 'host:port', got {workers!r}")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(workers):
        raise TfpipeError(f"device option index must be 0..{len(workers) - 1} (this worker's position "
                          f"in workers), got {index!r}")
    return {"TF_CONFIG": tf_config(list(workers), index)}


def configure(tf: Any, options: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    config = json.loads(os.environ.get("TF_CONFIG", "{}"))
    return {"cluster": config.get("cluster"), "task": config.get("task")}


def strategy(tf: Any, options: dict[str, Any], context: dict[str, Any]) -> Any:
    return tf.distribute.MultiWorkerMirroredStrategy()
