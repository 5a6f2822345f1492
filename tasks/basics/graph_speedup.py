"""Eager vs graph stage: times a shallow and a deep Dense model both ways (work() runs in a TensorFlow process)."""
from __future__ import annotations

import os
import platform
import socket
import time
from pathlib import Path
from typing import Any

import luigi

from plugins.errors import TfpipeError
from tasks import atomic
from tasks.base import PipelineTask
from tasks.protocol import Progress, run_stage


class TimeGraphSpeedup(PipelineTask):
    """Reads nothing upstream; calls each model `repeats` times eagerly and as a tf.function on a
    batch of `batch_size` 28x28 inputs; writes speedup.json (all call times, medians, the machine)
    and speedup.png (median bars)."""

    stage = "graph"

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
        from tasks.basics.plots import speedup_png  # numpy stays out of a no-op rerun

        if min(self.batch_size, self.repeats) <= 0 or self.warmup < 0:
            raise TfpipeError(f"batch_size ({self.batch_size}) and repeats ({self.repeats}) must be greater "
                              f"than 0 and warmup ({self.warmup}) at least 0")
        result = run_stage(self, {"batch_size": self.batch_size, "repeats": self.repeats,
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


# ----- the stage's own process: python -m tasks.basics.graph_speedup REQUEST.json -----

# name -> (units of each Dense layer, dropout rate after each)
MODELS = {"shallow": ((10, 20, 30), 0.2), "deep": ((1000, 2000, 3000), 0.0)}


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(tf) -> dict[str, Any]:
    from tasks.tf_runtime import cpu_threads
    return {"host": socket.gethostname(), "cpu": cpu_model(), "cpu_count": os.cpu_count(),
            "usable_cores": cpu_threads(), "platform": platform.platform(),
            "tensorflow": tf.__version__,
            "gpus": [gpu.name for gpu in tf.config.list_physical_devices("GPU")]}


def build(units: tuple[int, ...], dropout: float):
    import keras

    layers: list[Any] = [keras.Input(shape=(28, 28)), keras.layers.Flatten()]
    for width in units:
        layers.append(keras.layers.Dense(width, activation="relu"))
        if dropout:
            layers.append(keras.layers.Dropout(dropout))
    return keras.Sequential(layers)


def work(request: dict[str, Any]) -> dict[str, Any]:
    from tasks.tf_runtime import start_tensorflow
    tf = start_tensorflow(request["seed"], deterministic=False)
    x = tf.random.uniform([request["batch_size"], 28, 28], seed=request["seed"])
    repeats, warmup = request["repeats"], request["warmup"]
    progress = Progress(repeats * len(MODELS), "eager vs graph")
    results = {}
    for index, (name, (units, dropout)) in enumerate(MODELS.items()):
        model = build(units, dropout)
        graph = tf.function(model)
        model(x).numpy()  # build the variables outside the timing
        started = time.perf_counter()
        graph(x).numpy()
        trace_ms = 1000 * (time.perf_counter() - started)
        for _ in range(warmup):
            model(x).numpy(), graph(x).numpy()
        samples: dict[str, list[float]] = {"eager": [], "graph": []}
        for repeat in range(repeats):
            # Alternate the modes so both see the same background load.
            for mode, call in (("eager", model), ("graph", graph)):
                started = time.perf_counter()
                call(x).numpy()  # .numpy() waits for the result on any device
                samples[mode].append(1000 * (time.perf_counter() - started))
            progress.update(index * repeats + repeat + 1)
        import statistics  # only when timing: it imports fractions, a cost to every no-op rerun

        eager, graphed = statistics.median(samples["eager"]), statistics.median(samples["graph"])
        results[name] = {
            "layers": list(units), "dropout": dropout,
            "parameters": int(sum(int(tf.size(v)) for v in model.trainable_variables)),
            "eager_median_ms": round(eager, 4), "graph_median_ms": round(graphed, 4),
            "speedup": round(eager / graphed, 3), "graph_first_call_ms": round(trace_ms, 2),
            "eager_ms": [round(v, 4) for v in samples["eager"]],
            "graph_ms": [round(v, 4) for v in samples["graph"]],
        }
    return {"models": results, "batch_shape": [request["batch_size"], 28, 28], "repeats": repeats,
            "warmup": warmup, "machine": machine(tf)}


if __name__ == "__main__":
    from tasks.protocol import main

    main(work)
