"""tfpipe vs a plain Keras script on the reference protocol, side by side in one run.

python bench/image_protocol.py [--data /usr/share/datasets/fashion-mnist] [--steps 1000] [--models mlp cnn]

For each model: run `luigi --module pipelines ImageRun` with
pipelines/configs/reference.yaml (constant lr, no dropout: the plain model) in a
fresh workspace (download from the mirror, preprocess, train, evaluate), then the plain script
(bench/plain_keras_image.py) on the same files; print test accuracy, training
time and samples/s of both, and tfpipe's throughput relative to plain Keras.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def tfpipe_run(data: Path, model: str, steps: int, extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        mirror = Path(tmp) / "mirror"
        (mirror).mkdir()
        (mirror / "fashion_mnist").symlink_to(data)  # the mirror layout, pointing at the data
        env = {**os.environ, "TFPIPE_WORKSPACE": str(Path(tmp) / "ws"), "TFPIPE_DATA_MIRROR": str(mirror)}
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "luigi", "--module", "pipelines", "ImageRun",
                               "--config", str(ROOT / "pipelines" / "configs" / "reference.yaml"),
                               "--dataset", "fashion_mnist", "--model", model, "--steps", str(steps),
                               "--checkpoint-every", str(max(steps // 4, 1)), *extra, "--local-scheduler"],
                              cwd=ROOT, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - started
        if done.returncode:
            sys.exit(f"tfpipe failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
        train = json.loads(next(Path(tmp, "ws", "train").glob("*/manifest.json")).read_text())["record"]
        metrics = json.loads(next(Path(tmp, "ws", "evaluate").glob("*/metrics.json")).read_text())
    return {"test_accuracy": metrics["accuracy"], "train_seconds": train["train_seconds"],
            "samples_per_s": train["samples_per_s"], "pipeline_wall_s": wall}


def plain_run(data: Path, model: str, steps: int) -> dict:
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "plain_keras_image.py"), "--data", str(data),
                           "--model", model, "--steps", str(steps)], capture_output=True, text=True,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    if done.returncode:
        sys.exit(f"plain script failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("/usr/share/datasets/fashion-mnist"))
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--models", nargs="+", default=["mlp", "cnn"])
    parser.add_argument("--tfpipe-args", nargs=argparse.REMAINDER, default=[],
                        help="extra ImageRun parameters, e.g. --batch-size 50")
    args = parser.parse_args()
    print(f"# {args.steps} Adam steps, batch 50, lr 1e-3, data {args.data}, {os.cpu_count()} CPUs")
    print("| model | tfpipe test acc | plain Keras test acc | tfpipe samples/s | plain samples/s | ratio | "
          "tfpipe train s | plain train s |")
    print("|---|---|---|---|---|---|---|---|")
    for model in args.models:
        ours = tfpipe_run(args.data, model, args.steps, args.tfpipe_args)
        plain = plain_run(args.data, model, args.steps)
        print(f"| {model} | {ours['test_accuracy']:.4f} | {plain['test_accuracy']:.4f} | "
              f"{ours['samples_per_s']:.0f} | {plain['samples_per_s']:.0f} | "
              f"{ours['samples_per_s'] / plain['samples_per_s']:.2f}x | {ours['train_seconds']:.1f} | "
              f"{plain['train_seconds']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
