"""TensorFlow worker of TimeGraphSpeedup: eager calls vs tf.function calls of two models (subprocess).

Request: batch_size, repeats, warmup, seed. Result: per model the call times (ms) in
both modes with medians, the first (tracing) call of the graph, and the machine it ran on.
"""
from __future__ import annotations

import os
import platform
import socket
import statistics
import time
from typing import Any

from tasks.tf_runtime import cpu_threads, start_tensorflow
from tasks.worker import Progress, main

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


def time_models(request: dict[str, Any]) -> dict[str, Any]:
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
    main(time_models)
