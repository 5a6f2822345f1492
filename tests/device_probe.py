"""Test worker: apply a device policy like a training worker does, report the tf.config state.

Run by tests/test_devices.py through tasks.protocol.run_stage (a real subprocess), like a stage:
the module that defines the task is the one its process runs.
"""
from __future__ import annotations

import os
from typing import Any

import luigi

from tasks import tf_runtime
from tasks.protocol import main


class ProbeDevice(luigi.Task):
    """Stands for a stage task: run_stage runs the module that defines it."""


def work(request: dict[str, Any]) -> dict[str, Any]:
    tf = tf_runtime.start_tensorflow(0, False, request.get("device"))
    strategy = tf_runtime.strategy()
    return {
        "env": {key: os.environ.get(key) for key in ("CUDA_VISIBLE_DEVICES", "TF_CONFIG")},
        "visible_gpus": len(tf.config.get_visible_devices("GPU")),
        "logical_cpus": [device.name for device in tf.config.list_logical_devices("CPU")],
        "strategy": type(strategy).__name__,
        "replicas": int(strategy.num_replicas_in_sync),
        "record": tf_runtime.device_record(),
    }


if __name__ == "__main__":
    main(work)
