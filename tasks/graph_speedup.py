"""Eager vs graph stage: times a shallow and a deep Dense model both ways (tasks.graph_speedup_tf)."""
from __future__ import annotations

import platform
import socket
from pathlib import Path
from typing import Any

import luigi

from tasks import atomic
from tasks.base import PipelineTask
from tasks.basics_plots import speedup_png
from tasks.child import run_worker
from tasks.errors import TfpipeError


class TimeGraphSpeedup(PipelineTask):
    """Reads nothing upstream; calls each model `repeats` times eagerly and as a tf.function on a
    batch of `batch_size` 28x28 inputs; writes speedup.json (all call times, medians, the machine)
    and speedup.png (median bars)."""

    stage = "graph"
    worker_module = "tasks.graph_speedup_tf"

    batch_size = luigi.IntParameter(default=60)
    repeats = luigi.IntParameter(default=100, description="timed calls per model and mode")
    warmup = luigi.IntParameter(default=5, description="untimed calls per model and mode first")
    seed = luigi.IntParameter(default=0)

    def run_name(self) -> str:
        return "graph-speedup"

    def fingerprint_components(self) -> dict[str, Any]:
        components = super().fingerprint_components()
        # A timing is a fact about one machine: another host measures afresh.
        components["machine"] = {"host": socket.gethostname(), "arch": platform.machine()}
        return components

    def produce(self, folder: Path) -> dict[str, Any]:
        if min(self.batch_size, self.repeats) <= 0 or self.warmup < 0:
            raise TfpipeError(f"batch_size ({self.batch_size}) and repeats ({self.repeats}) must be greater "
                              f"than 0 and warmup ({self.warmup}) at least 0")
        result = run_worker(self, self.worker_module, {"batch_size": self.batch_size, "repeats": self.repeats,
                                                        "warmup": self.warmup, "seed": self.seed}, folder)
        atomic.write_json(folder / "speedup.json", result)
        where = result["machine"]
        device = ", ".join(where["gpus"]) or f"{where['cpu']}, {where['usable_cores']} cores"
        speedup_png(result["models"], folder / "speedup.png",
                    f"batch {self.batch_size}, {self.repeats} calls, TF {where['tensorflow']} on {device}")
        summary = {name: {key: value for key, value in model.items() if not key.endswith("_ms")
                          or key.endswith("median_ms") or key == "graph_first_call_ms"}
                   for name, model in result["models"].items()}
        return {"models": summary, "machine": where, "json": str(folder / "speedup.json"),
                "plot": str(folder / "speedup.png")}
