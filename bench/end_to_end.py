"""The whole reference job as a user waits for it: tfpipe vs the plain Keras script, in one run.

python bench/end_to_end.py [--data /usr/share/datasets/fashion-mnist] [--models mlp cnn] [--rounds 3]
                           [--protocol reference|default] [--sides A A0 B]

Each round runs, in an order that rotates from round to round:
  A  `luigi --module pipelines ImageRun` with pipelines/configs/reference.yaml (1000 Adam steps of
     batch 50, lr 1e-3) in a fresh workspace: copy from the data mirror, preprocess, train,
     checkpoint, export, evaluate on the test set with plots, report;
  A0 the same with `executors.local.reuse_process: false`: one process per stage (tfpipe before
     tasks/stage_server.py);
  B  bench/plain_keras_image.py: load the IDX files, model.fit with 50 steps per compiled call
     (and XLA for the mlp, faster there on a CPU; oneDNN's kernels where tfpipe turns them on,
     for the cnn), evaluate on the test set, save a .keras file.
With --protocol default, A and A0 take tfpipe's default image settings (pipelines/settings.py: steps,
batch, Adam's rate, cosine decay of the learning rate, validation and a checkpoint every 500 steps)
and B trains as many steps of the same batch with the same rate, schedule and moving average of the
weights (image.ema_momentum; Adam's use_ema), without mirroring in training or at prediction (a
speed comparison; A and A0 do both on Fashion-MNIST, as the defaults say: more work on their side).
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

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from pipelines.settings import get as setting  # noqa: E402 - the pipeline's own defaults
from tasks.onednn import onednn_env  # noqa: E402 - the plain side gets the kernels tfpipe chooses

REFERENCE = ROOT / "pipelines" / "configs" / "reference.yaml"


def tfpipe(data: Path, model: str, steps: int | None, reuse: bool) -> tuple[float, float]:
    """(wall seconds, test accuracy) of one ImageRun in a fresh workspace (steps None: the default
    settings, else the reference protocol with that many steps)."""
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "mirror").mkdir()
        (Path(tmp) / "mirror" / "fashion_mnist").symlink_to(data)  # the mirror layout, pointing at the data
        config = Path(tmp) / "reference.yaml"
        protocol = "" if steps is None else REFERENCE.read_text()
        config.write_text(protocol + f"executors:\n  local:\n    reuse_process: {str(reuse).lower()}\n")
        env = {**os.environ, "TFPIPE_WORKSPACE": f"{tmp}/ws", "TFPIPE_DATA_MIRROR": f"{tmp}/mirror"}
        command = [sys.executable, "-m", "luigi", "--module", "pipelines", "ImageRun", "--config", str(config),
                   "--dataset", "fashion_mnist", "--model", model, "--local-scheduler"]
        command += [] if steps is None else ["--steps", str(steps)]
        started = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - started
        if done.returncode:
            sys.exit(f"tfpipe failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
        metrics = json.loads(next(Path(tmp, "ws", "evaluate").glob("*/metrics.json")).read_text())
    return wall, metrics["accuracy"]


def plain(data: Path, model: str, protocol: dict) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, str(ROOT / "bench" / "plain_keras_image.py"), "--data", str(data),
                   "--model", model, "--save", f"{tmp}/model.keras"]
        command += [f"--{key.replace('_', '-')}={value}" for key, value in protocol.items()]
        if model == "mlp":
            command.append("--jit-compile")
        started = time.perf_counter()
        # oneDNN's kernels as tfpipe chooses them for this model (cnn: on), so the two train alike.
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **onednn_env("auto", model)}
        done = subprocess.run(command, capture_output=True, text=True, env=env)
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
    parser.add_argument("--protocol", choices=["reference", "default"], default="reference")
    parser.add_argument("--sides", nargs="+", choices=["A", "A0", "B"], default=["A", "A0", "B"])
    args = parser.parse_args()
    if "B" not in args.sides or len(args.sides) < 2:
        parser.error("--sides needs B and at least one of A, A0")
    default = args.protocol == "default"
    keys = ("steps", "batch_size", "learning_rate", "lr_schedule", "ema_momentum")
    if default:  # the pipeline's own defaults
        source = {key: setting(f"image.{key}").default for key in keys}
    else:  # the file side A runs with, --steps over it
        source = {**yaml.safe_load(REFERENCE.read_text())["image"], "steps": args.steps}
    protocol = {key: source[key] for key in keys}
    print(f"# machine: {machine()}")
    print(f"# {args.protocol} protocol: {protocol['steps']} Adam steps of batch {protocol['batch_size']}, "
          f"lr {protocol['learning_rate']:g} {protocol['lr_schedule']}, weight average (EMA) momentum "
          f"{protocol['ema_momentum']:g}, Fashion-MNIST from {args.data}; "
          f"wall time of each whole command, {args.rounds} rounds, order rotating")
    every = {"A": lambda m: tfpipe(args.data, m, None if default else args.steps, True),
             "A0": lambda m: tfpipe(args.data, m, None if default else args.steps, False),
             "B": lambda m: plain(args.data, m, protocol)}
    sides = {name: every[name] for name in every if name in args.sides}
    print("| model | A tfpipe, s | A0 tfpipe, a process per stage, s | B plain Keras, s | A/B | A0/B | "
          "test accuracy A / B |")
    print("|---|---|---|---|---|---|---|")
    for model in args.models:
        walls: dict[str, list[float]] = {name: [] for name in sides}
        accuracy: dict[str, float] = {}
        for round_ in range(args.rounds):
            names = list(sides)
            for name in names[round_ % len(names):] + names[:round_ % len(names)]:
                wall, accuracy[name] = sides[name](model)
                walls[name].append(wall)
                print(f"#   {model} round {round_ + 1} {name}: {wall:.1f} s, load average {os.getloadavg()[0]:.2f}",
                      flush=True)
        medians = {name: f"{statistics.median(walls.get(name) or [0]):.1f}" if name in walls else "-"
                   for name in ("A", "A0", "B")}
        ratios = {name: spread([a / b for a, b in zip(walls[name], walls["B"])]) if name in walls else "-"
                  for name in ("A", "A0")}
        print(f"| {model} | {medians['A']} | {medians['A0']} | {medians['B']} | {ratios['A']} | {ratios['A0']} | "
              f"{accuracy.get('A', accuracy.get('A0')):.4f} / {accuracy['B']:.4f} |", flush=True)
    print(f"# load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
