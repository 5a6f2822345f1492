"""The same images through `image_folder` (PNG files) and through `fashion_mnist` (IDX): accuracy.

python bench/image_folder_vs_idx.py [--model mlp] [--steps N] [--limit N] [--workspace DIR]

Writes the real Fashion-MNIST training and test images (Debian's
dataset-fashion-mnist, or $TFPIPE_DATA_MIRROR/fashion_mnist/) as grayscale PNG
files, one sub-folder per class, then runs `luigi --module pipelines ImageRun`
twice with the same model, settings and seeds: once on the folder
(`--dataset image_folder`, image_size 28x28, grayscale, test_path = the test
folder) and once on `fashion_mnist`. Prints both test accuracies, the sample
counts, the preprocessing and training times. The two should agree closely: the
pixels are the same; only the order of the samples in the source differs.
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

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
NAMES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
         "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}


def source_folder() -> Path:
    mirror = os.environ.get("TFPIPE_DATA_MIRROR")
    for folder in ([Path(mirror) / "fashion_mnist"] if mirror else []) + [Path("/usr/share/datasets/fashion-mnist")]:
        if (folder / NAMES["train"][0]).is_file():
            return folder
    sys.exit("Fashion-MNIST not found: apt-get install dataset-fashion-mnist, or set TFPIPE_DATA_MIRROR")


def read_idx(path: Path) -> np.ndarray:
    data = gzip.decompress(path.read_bytes())
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def write_png_folders(source: Path, target: Path, limit: int | None) -> dict[str, int]:
    from PIL import Image

    counts = {}
    for split, (images_name, labels_name) in NAMES.items():
        images, labels = read_idx(source / images_name), read_idx(source / labels_name)
        if limit:
            images, labels = images[:limit], labels[:limit]
        for index, (image, label) in enumerate(zip(images, labels)):
            folder = target / split / f"class_{label}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image, mode="L").save(folder / f"{index:05d}.png")
        counts[split] = len(images)
    return counts


def image_run(workspace: Path, args: list[str]) -> tuple[dict, dict, float]:
    env = {**os.environ, "TFPIPE_WORKSPACE": str(workspace)}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "luigi", "--module", "pipelines", "ImageRun", *args,
                           "--local-scheduler"], cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode:
        sys.exit(f"ImageRun {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    metrics = json.loads(next(workspace.glob("evaluate/*/metrics.json")).read_text())
    stages = {path.parent.parent.name: json.loads(path.read_text()) for path in workspace.glob("*/*/manifest.json")}
    return metrics, stages, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="mlp")
    parser.add_argument("--steps", type=int, help="default: the configured default")
    parser.add_argument("--limit", type=int, help="use only the first N images of each split")
    parser.add_argument("--workspace", type=Path, help="default: a temporary folder")
    args = parser.parse_args()
    root = args.workspace or Path(tempfile.mkdtemp(prefix="tfpipe-bench-folder-"))
    started = time.perf_counter()
    counts = write_png_folders(source_folder(), root / "pngs", args.limit)
    print(f"wrote {counts['train']} + {counts['test']} PNG files in {time.perf_counter() - started:.0f} s")
    common = ["--model", args.model, *(["--steps", str(args.steps)] if args.steps else [])]
    options = {"path": str(root / "pngs" / "train"), "test_path": str(root / "pngs" / "test"),
               "image_size": [28, 28], "color": "grayscale"}
    runs = {
        "image_folder (PNG)": image_run(root / "ws-folder", ["--dataset", "image_folder", "--dataset-options",
                                                              json.dumps(options), *common]),
    }
    if not args.limit:
        runs["fashion_mnist (IDX)"] = image_run(root / "ws-idx", ["--dataset", "fashion_mnist", *common])
    print(f"\n| dataset | train/val/test | test accuracy | preprocess (s) | train (s) | whole run (s) |"
          f"  ({args.model}, {os.cpu_count()} CPUs)")
    print("|---|---|---|---|---|---|")
    for name, (metrics, stages, seconds) in runs.items():
        meta = stages["preprocess"]["record"].get("counts", {})
        split = "/".join(str(meta.get(key, "?")) for key in ("train", "val", "test"))
        print(f"| {name} | {split} | {metrics['accuracy']:.4f} | {stages['preprocess']['duration_s']:.1f} | "
              f"{stages['train']['duration_s']:.1f} | {seconds:.0f} |")


if __name__ == "__main__":
    main()
