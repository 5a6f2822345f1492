"""One line naming the machine a benchmark ran on, for every bench/ script."""
import importlib.metadata
import os
import platform
from pathlib import Path


def cpu_model() -> str:
    """The CPU's name and its widest vector instructions: two VMs both named "AMD EPYC" differed
    1.9x in the LSTM's speed, one with AVX-512 (where TensorFlow turns oneDNN on), one without."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or platform.machine() or "unknown CPU"
    def first(key: str) -> str:  # every core repeats the same fields; the first core's will do
        return next((line.split(":", 1)[1].strip() for line in lines
                     if line.split(":", 1)[0].strip() == key), "")

    flags = set(first("flags").split())
    vector = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    return f"{first('model name') or platform.machine()} ({vector})"


def version(*distributions: str) -> str:
    for name in distributions:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "not installed"


def machine() -> str:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (f"{cpu_model()}, {cores} cores usable, Python {platform.python_version()}, "
            f"TensorFlow {version('tensorflow-cpu', 'tensorflow')}, Luigi {version('luigi')}, "
            f"load average {os.getloadavg()[0]:.2f}")
