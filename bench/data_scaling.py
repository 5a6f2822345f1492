"""Memory and time of preprocessing and training at 60k vs 600k samples.

python bench/data_scaling.py [--steps 300] [--model mlp] [--keep DIR]

Builds two `arrays` datasets in a temporary folder from Debian's Fashion-MNIST
(/usr/share/datasets/fashion-mnist): the 60,000 training images as they are,
and tiled 10x (600,000), each written as uncompressed IDX (the 10,000 test
images unchanged). For each it runs, through the real `luigi` command line,
the download (validation pass), PreprocessImages and TrainImageModel (--steps
steps), each stage as its own command, and reports the peak RSS of the
largest process of that command (the Luigi process or the stage's worker:
getrusage(RUSAGE_CHILDREN).ru_maxrss, read by a small wrapper process after
it waited on the command) and its wall time.

Goal: peak RSS grows at most 1.5x from 60k to 600k samples.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import machine  # bench/machine.py: the script's own folder is on sys.path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = Path("/usr/share/datasets/fashion-mnist")
ROWS = 10_000

# Runs the command given as arguments, waits for it, prints its tree's peak RSS (KiB).
WRAPPER = ("import resource, subprocess, sys\n"
           "code = subprocess.call(sys.argv[1:])\n"
           "print('PEAK_RSS_KB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
           "sys.exit(code)\n")


def idx_header(shape: tuple[int, ...]) -> bytes:
    return bytes([0, 0, 8, len(shape)]) + b"".join(n.to_bytes(4, "big") for n in shape)


def copy_rows(source: Path, target, skip_header: int) -> None:
    """Append the data part of an IDX .gz file to `target`, streamed."""
    with gzip.open(source, "rb") as stream:
        stream.read(skip_header)
        for block in iter(lambda: stream.read(1 << 20), b""):
            target.write(block)


def write_dataset(folder: Path, repeats: int) -> int:
    """Fashion-MNIST's training set tiled `repeats` times, as plain IDX files; returns its size."""
    folder.mkdir(parents=True, exist_ok=True)
    count = 60_000 * repeats
    with open(folder / "train-images-idx3-ubyte", "wb") as images:
        images.write(idx_header((count, 28, 28)))
        for _ in range(repeats):
            copy_rows(SOURCE / "train-images-idx3-ubyte.gz", images, 16)
    with open(folder / "train-labels-idx1-ubyte", "wb") as labels:
        labels.write(idx_header((count,)))
        for _ in range(repeats):
            copy_rows(SOURCE / "train-labels-idx1-ubyte.gz", labels, 8)
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        with open(folder / name, "wb") as out:
            out.write(gzip.decompress((SOURCE / f"{name}.gz").read_bytes()))
    return count


def measure(args: list[str], workspace: Path) -> tuple[float, int, str]:
    """(wall seconds, peak RSS KiB, output) of one `luigi` command."""
    env = {**os.environ, "TFPIPE_WORKSPACE": str(workspace), "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-c", WRAPPER, sys.executable, "-m", "luigi", *args,
               "--local-scheduler"]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    output = done.stdout + done.stderr
    if done.returncode != 0 or "PEAK_RSS_KB" not in done.stdout:
        sys.exit(f"{' '.join(args)} failed (exit {done.returncode}):\n{output[-4000:]}")
    peak = int(done.stdout.rsplit("PEAK_RSS_KB", 1)[1].split()[0])
    return seconds, peak, output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--model", default="mlp")
    parser.add_argument("--keep", type=Path,
                        help="work here and keep the files (default: a temporary folder)")
    args = parser.parse_args()
    if not SOURCE.is_dir():
        sys.exit(f"{SOURCE} not found: install Debian's dataset-fashion-mnist")

    with tempfile.TemporaryDirectory(prefix="tfpipe-scaling-") as tmp_name:
        tmp = args.keep or Path(tmp_name)
        results: dict[int, dict[str, tuple[float, int]]] = {}
        for repeats in (1, 10):
            data = tmp / f"fashion-x{repeats}"
            count = write_dataset(data, repeats)
            workspace = tmp / f"ws-x{repeats}"
            common = ["--workspace", str(workspace), "--dataset", "arrays", "--dataset-options",
                      json.dumps({"path": str(data)})]
            preprocess = [*common, "--validation-fraction", "0.1", "--split-seed", "0"]
            stages = {
                "download": ["--module", "tasks.image.download", "DownloadImageDataset", *common],
                "preprocess": ["--module", "tasks.image.preprocess", "PreprocessImages",
                               *preprocess],
                "train": ["--module", "tasks.image.train", "TrainImageModel", *preprocess,
                          "--model", args.model, "--model-params", "{}", "--steps", str(args.steps),
                          "--batch-size", str(args.batch_size), "--learning-rate", "0.001",
                          "--lr-schedule", "constant", "--seed", "1",
                          "--checkpoint-every", str(args.steps)],
            }
            results[count] = {}
            for stage, stage_args in stages.items():
                seconds, peak, _ = measure(stage_args, workspace)
                results[count][stage] = (seconds, peak)
                print(f"{count:>7} samples  {stage:<10}  {seconds:7.1f} s  peak RSS "
                      f"{peak / 1024:7.1f} MiB", flush=True)
            size = sum(p.stat().st_size for p in (workspace / "preprocess").rglob("*.bin"))
            print(f"{count:>7} samples  shards on disk: {size / 2**20:.0f} MiB", flush=True)

    small, large = sorted(results)
    print()
    print(f"machine: {machine()}")
    print(f"model {args.model}, {args.steps} steps of batch {args.batch_size}; peak RSS is the "
          "largest process of each `luigi` command")
    print(f"| stage | {small} wall s | {large} wall s | {small} peak RSS MiB | "
          f"{large} peak RSS MiB | RSS ratio |")
    print("|---|---|---|---|---|---|")
    worst = 0.0
    for stage in results[small]:
        (s_time, s_rss), (l_time, l_rss) = results[small][stage], results[large][stage]
        ratio = l_rss / s_rss
        worst = max(worst, ratio)
        print(f"| {stage} | {s_time:.1f} | {l_time:.1f} | {s_rss / 1024:.0f} | {l_rss / 1024:.0f} "
              f"| {ratio:.2f}x |")
    verdict = "met" if worst <= 1.5 else "NOT met"
    print(f"\nlargest RSS growth {worst:.2f}x for 10x the samples: goal (<= 1.5x) {verdict}")


if __name__ == "__main__":
    main()
