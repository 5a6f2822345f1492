"""The whole reference job as a user waits for it: tfpipe vs the plain Keras script, in one run.

python bench/end_to_end.py [--data /usr/share/datasets/fashion-mnist] [--models mlp cnn] [--rounds 3]

Each round runs, in an order that rotates from round to round:
  A  `luigi --module pipelines ImageRun` with pipelines/configs/reference.yaml (1000 Adam steps of
     batch 50, lr 1e-3) in a fresh workspace: copy from the data mirror, preprocess, train,
     checkpoint, export, evaluate on the test set with plots, report;
  A0 the same with `executors.local.reuse_process: false`: one process per stage (tfpipe before
     tasks/stage_server.py);
  B  bench/plain_keras_image.py: load the IDX files, model.fit with 50 steps per compiled call
     (and XLA for the mlp, faster there on a CPU), evaluate on the test set, save a .keras file.
Rule: wall time of the whole command, from process start to exit, both sides alike. Prints the
machine, the medians, and the median and min-max of the per-round ratios A/B and A0/B.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "pipelines" / "configs" / "reference.yaml"


def tfpipe(data: Path, model: str, steps: int, reuse: bool) -> tuple[float, float]:
    """(wall seconds, test accuracy) of one ImageRun in a fresh workspace."""
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "mirror").mkdir()
        (Path(tmp) / "mirror" / "fashion_mnist").symlink_to(data)  # the mirror layout, pointing at the data
        config = Path(tmp) / "reference.yaml"
        config.write_text(REFERENCE.read_text() + f"executors:\n  local:\n    reuse_process: {str(reuse).lower()}\n")
        env = {**os.environ, "TFPIPE_WORKSPACE": f"{tmp}/ws", "TFPIPE_DATA_MIRROR": f"{tmp}/mirror"}
        command = [sys.executable, "-m", "luigi", "--module", "pipelines", "ImageRun", "--config", str(config),
                   "--dataset", "fashion_mnist", "--model", model, "--steps", str(steps), "--local-scheduler"]
        started = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - started
        if done.returncode:
            sys.exit(f"tfpipe failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
        metrics = json.loads(next(Path(tmp, "ws", "evaluate").glob("*/metrics.json")).read_text())
    return wall, metrics["accuracy"]


def plain(data: Path, model: str, steps: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, str(ROOT / "bench" / "plain_keras_image.py"), "--data", str(data),
                   "--model", model, "--steps", str(steps), "--save", f"{tmp}/model.keras"]
        if model == "mlp":
            command.append("--jit-compile")
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
        wall = time.perf_counter() - started
        if done.returncode or not Path(tmp, "model.keras").is_file():
            sys.exit(f"plain script failed:\n{done.stderr[-3000:]}")
    return wall, json.loads(done.stdout.strip().splitlines()[-1])["test_accuracy"]


def spread(ratios: list[float]) -> str:
    return f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("/usr/share/datasets/fashion-mnist"))
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--models", nargs="+", default=["mlp", "cnn"])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"# machine: {machine()}")
    print(f"# {args.steps} Adam steps of batch 50, Fashion-MNIST from {args.data}; wall time of each whole command, "
          f"{args.rounds} rounds, order rotating")
    sides = {"A": lambda m: tfpipe(args.data, m, args.steps, True),
             "A0": lambda m: tfpipe(args.data, m, args.steps, False),
             "B": lambda m: plain(args.data, m, args.steps)}
    print("| model | A tfpipe, s | A0 tfpipe, a process per stage, s | B plain Keras, s | A/B | A0/B | "
          "test accuracy A / B |")
    print("|---|---|---|---|---|---|---|")
    for model in args.models:
        walls: dict[str, list[float]] = {name: [] for name in sides}
        accuracy: dict[str, float] = {}
        for round_ in range(args.rounds):
            names = list(sides)
            for name in names[round_ % 3:] + names[:round_ % 3]:
                wall, accuracy[name] = sides[name](model)
                walls[name].append(wall)
                print(f"#   {model} round {round_ + 1} {name}: {wall:.1f} s, load average {os.getloadavg()[0]:.2f}",
                      flush=True)
        ratio = [a / b for a, b in zip(walls["A"], walls["B"])]
        before = [a / b for a, b in zip(walls["A0"], walls["B"])]
        print(f"| {model} | {statistics.median(walls['A']):.1f} | {statistics.median(walls['A0']):.1f} | "
              f"{statistics.median(walls['B']):.1f} | {spread(ratio)} | {spread(before)} | "
              f"{accuracy['A']:.4f} / {accuracy['B']:.4f} |", flush=True)
    print(f"# load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
