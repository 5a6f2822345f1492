"""Default configuration on a real dataset: test accuracy and training time per model.

python bench/image_defaults.py [--dataset fashion_mnist] [--models cnn mlp] [--workspace DIR]

Runs `luigi --module pipelines ImageRun` with nothing but the dataset and model
given (every other value from the defaults declared in pipelines/settings.py) in a fresh
workspace, and prints a table from the manifests: validation accuracy (the split training never
trains on, where defaults are chosen) and test accuracy, training time and samples per second.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="fashion_mnist")
    parser.add_argument("--models", nargs="+", default=["cnn", "mlp"])
    parser.add_argument("--workspace", type=Path, help="default: a temporary folder")
    args = parser.parse_args()
    workspace = args.workspace or Path(tempfile.mkdtemp(prefix="tfpipe-bench-"))
    env = {**os.environ, "TFPIPE_WORKSPACE": str(workspace)}
    print(f"# machine: {machine()}; dataset {args.dataset}")
    print("| model | steps x batch | validation accuracy | test accuracy | training time (s) | samples/s |")
    print("|---|---|---|---|---|---|")
    for model in args.models:
        done = subprocess.run([sys.executable, "-m", "luigi", "--module", "pipelines", "ImageRun", "--dataset",
                               args.dataset, "--model", model, "--local-scheduler"], cwd=ROOT, env=env,
                              capture_output=True, text=True, check=False)
        if done.returncode:
            sys.exit(f"ImageRun {model} failed:\n{done.stderr[-3000:]}")
        train = json.loads(next(workspace.glob(f"train/{args.dataset}-{model}-*/manifest.json")).read_text())
        metrics = json.loads(next(workspace.glob(f"evaluate/{args.dataset}-{model}-*/metrics.json")).read_text())
        record = train["record"]
        request = json.loads(next(workspace.glob(f"train/{args.dataset}-{model}-*/request.json")).read_text())
        print(f"| {model} | {record['final_step']} x {request['batch_size']} | {record['val_accuracy']:.4f} | "
              f"{metrics['accuracy']:.4f} | {record['train_seconds']:.0f} | {record['samples_per_s']:.0f} |",
              flush=True)


if __name__ == "__main__":
    main()
