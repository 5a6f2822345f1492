"""Test stage: does what its request says, so tests/test_stage_server.py can watch the process
that tasks.stage_server hands each stage (run through tasks.protocol.run_stage, like a real stage)."""
from __future__ import annotations

import os
import time
from typing import Any

import luigi

from plugins.errors import TfpipeError
from tasks.protocol import main


class ProbeStage(luigi.Task):
    """Stands for a stage task: run_stage runs the module that defines it."""

    executor_options = luigi.DictParameter(default={})


def work(request: dict[str, Any]) -> dict[str, Any]:
    action = request["action"]
    if action == "user_error":
        raise TfpipeError("the probe's user error")
    if action == "crash":
        raise RuntimeError("the probe crashed")
    if action == "exit":
        os._exit(7)
    if action == "garbled":  # an event line the parent cannot read, then more work
        print("@@tfpipe {not json", flush=True)
        time.sleep(30)
    found: dict[str, Any] = {"pid": os.getpid(), "env": os.environ.get("PROBE_MARK")}
    if action == "tensorflow":
        from tasks.tf_runtime import start_tensorflow

        tf = start_tensorflow(0, request["deterministic"])
        import keras
        from tensorflow.python.framework import config

        found["determinism"] = config.is_op_determinism_enabled()
        found["layer_name"] = keras.layers.Dense(1).name  # numbered per session: dense, dense_1, ...
        found["draw"] = float(tf.random.uniform([]))  # seeded: the same in a fresh process
    return found


if __name__ == "__main__":
    main(work)
