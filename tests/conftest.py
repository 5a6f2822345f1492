"""Shared fixtures: tiny generated datasets and a real `luigi` command line."""
from __future__ import annotations

import gzip
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from plugins.datasets import idx

ROOT = Path(__file__).resolve().parent.parent

# Most tests wait on a TensorFlow subprocess, a luigid or a Slurm job with one core idle, so
# the suite runs on pytest-xdist workers (pyproject.toml: -n auto --dist loadfile). loadfile
# keeps each file on one worker: the one-node Slurm cluster and the module fixtures start once.
MAX_WORKERS = 4  # each worker starts TensorFlow processes; more than this costs memory, not time


def pytest_xdist_auto_num_workers(config) -> int:
    """`-n auto`: one worker per CPU this process may use, at most MAX_WORKERS."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(usable, MAX_WORKERS))


def make_image_set(num_train: int = 400, num_test: int = 100, num_classes: int = 4, size: int = 12,
                   seed: int = 0) -> dict[str, np.ndarray]:
    """A learnable toy dataset: class k lights up band k of the image, plus noise."""
    rng = np.random.default_rng(seed)

    def images(labels: np.ndarray) -> np.ndarray:
        x = rng.integers(0, 60, size=(len(labels), size, size))
        band = size // num_classes
        for i, label in enumerate(labels):
            x[i, label * band:(label + 1) * band, :] += 180
        return np.clip(x, 0, 255).astype(np.uint8)

    y_train = rng.integers(0, num_classes, num_train).astype(np.uint8)
    y_test = rng.integers(0, num_classes, num_test).astype(np.uint8)
    return {"x_train": images(y_train), "y_train": y_train, "x_test": images(y_test), "y_test": y_test}


def write_idx_folder(folder: Path, arrays: dict[str, np.ndarray]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    names = {"x_train": "train-images-idx3-ubyte.gz", "y_train": "train-labels-idx1-ubyte.gz",
             "x_test": "t10k-images-idx3-ubyte.gz", "y_test": "t10k-labels-idx1-ubyte.gz"}
    for key, name in names.items():
        (folder / name).write_bytes(gzip.compress(idx.encode(arrays[key])))
    return folder


def tiny_args(data: Path) -> list[str]:
    """Small, fast ImageRun settings for end-to-end tests on the IDX folder `data` (read in
    place by the `arrays` dataset plugin; 400 training samples, 50 of them held out)."""
    return ["--dataset", "arrays", "--dataset-options", json.dumps({"path": str(data)}),
            "--steps", "60", "--batch-size", "20", "--checkpoint-every", "20",
            "--validation-fraction", "0.125"]


# Run name of the tiny dataset: download/arrays-tiny-<hash>, train/arrays-tiny-mlp-<hash>, ...
TINY_NAME = "arrays-tiny"


@pytest.fixture
def tiny_data(tmp_path: Path) -> Path:
    """A tiny, learnable IDX dataset in tmp_path/data/tiny."""
    return write_idx_folder(tmp_path / "data" / "tiny", make_image_set())


@pytest.fixture
def tiny(tiny_data: Path) -> list[str]:
    """ImageRun arguments selecting the tiny dataset (see tiny_args)."""
    return tiny_args(tiny_data)


@pytest.fixture
def mirror(tmp_path: Path) -> Path:
    """An empty data mirror (TFPIPE_DATA_MIRROR), so no test reads a real one by accident."""
    root = tmp_path / "mirror"
    root.mkdir(exist_ok=True)
    return root


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    return tmp_path / "workspace"


class LuigiRun:
    def __init__(self, completed: subprocess.CompletedProcess, started: float):
        self.returncode = completed.returncode
        self.output = completed.stdout + completed.stderr
        self.started = started

    def __repr__(self) -> str:
        return f"exit {self.returncode}\n{self.output[-6000:]}"


def luigi_env(workspace: Path, mirror: Path | None, extra_path: list[Path] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["TFPIPE_WORKSPACE"] = str(workspace)
    if mirror is not None:
        env["TFPIPE_DATA_MIRROR"] = str(mirror)
    if extra_path:
        env["PYTHONPATH"] = os.pathsep.join([*map(str, extra_path), env.get("PYTHONPATH", "")])
    return env


def run_luigi(args: list[str], workspace: Path, mirror: Path | None = None,
              extra_path: list[Path] | None = None, timeout: float = 600, cwd: Path = ROOT) -> LuigiRun:
    """Run the real `luigi` command line from the project root (so luigi.cfg applies)."""
    started = time.time()
    command = [sys.executable, "-m", "luigi", "--module", "pipelines", *args, "--local-scheduler"]
    completed = subprocess.run(command, cwd=cwd, env=luigi_env(workspace, mirror, extra_path),
                               capture_output=True, text=True, timeout=timeout, check=False)
    return LuigiRun(completed, started)


def written_since(workspace: Path, since: float) -> set[str]:
    """`stage/name` of every task folder whose manifest was written after `since`."""
    return {f"{path.parent.parent.name}/{path.parent.name.rsplit('-', 1)[0]}"
            for path in workspace.glob("*/*/manifest.json") if path.stat().st_mtime >= since}


def manifests(workspace: Path, stage: str) -> list[Path]:
    return sorted((workspace / stage).glob("*/manifest.json"))


def stages_written_since(workspace: Path, since: float) -> set[str]:
    """Stages with a manifest written after `since`: the tasks that ran."""
    return {path.parent.parent.name for path in workspace.glob("*/*/manifest.json")
            if path.stat().st_mtime >= since}


def make_corpus(path: Path, chars: int = 4000, seed: int = 0) -> Path:
    """A few thousand characters of sentences over a small word list."""
    rng = random.Random(seed)
    words = ["The", "will", "to", "power", "is", "a", "thing", "of", "beauty", "and", "of", "truth",
             ";", "what", "is", "good", "?", "All", "that"]
    text = ""
    while len(text) < chars:
        text += " ".join(rng.choice(words) for _ in range(10)) + ".\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def write_tiny_full_config(folder: Path) -> Path:
    """Tiny data for both paths (image: folder/data/tiny read in place by the `arrays` plugin;
    text: the file folder/texts/words.txt, read by the `text_file` plugin) and a config
    selecting them with small, fast models; returns the config path (for FullRun)."""
    data = write_idx_folder(folder / "data" / "tiny", make_image_set())
    corpus = make_corpus(folder / "texts" / "words.txt")
    config = folder / "tiny-full.yaml"
    config.write_text(
        "image:\n  dataset: arrays\n  model: mlp\n  steps: 20\n  batch_size: 20\n  checkpoint_every: 20\n"
        "  validation_fraction: 0.125\n"
        f"text:\n  corpus: {json.dumps(str(corpus))}\n  model: lstm\n  lowercase: false\n"
        "  window: 20\n  steps: 20\n"
        "  batch_size: 8\n  checkpoint_every: 20\n  temperatures: [0.5]\n  length: 30\n  seed_length: 10\n"
        f"datasets:\n  arrays:\n    path: {json.dumps(str(data))}\n"
        "models:\n  lstm:\n    units: 16\n    embedding_dim: 8\n")
    return config
