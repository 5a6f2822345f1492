"""Validation's share of training time in the default image config, subset vs whole set, side by side.

    python bench/validation_share.py                       # 1000 steps per run, 2 rounds
    python bench/validation_share.py --steps 2000 --rounds 3
    python bench/validation_share.py --model mlp --steps 500 --rounds 1   # a quick look

Runs the image training worker (`python -m tasks.image.train`, the code a pipeline runs) with the
default image settings, read from pipelines/settings.py (cnn; batch, Adam's rate, the cosine
schedule and a checkpoint every 500 steps; 10% of the training samples held out) on
Fashion-MNIST, which has MNIST's sizes (the default dataset, not on this machine): 54,000
training and 6,000 validation samples.

Two sides alternate, each run in a fresh process:
  subset: what the worker does, a fixed 2,000 validation samples at each checkpoint and the whole
          set at the last step;
  whole:  the whole validation set at every checkpoint (what it did before).

The rule: share = validation seconds / training seconds, both from the worker's own record
(validation passes and checkpoint writes are timed apart from the training steps; training
seconds leave both out). A run of --steps validates --steps/500 times, so its share overweights
the last, whole-set point compared with the default steps. The projection for the default steps
uses per-point costs measured here: a whole-set point from the whole-set runs, a subset point
from the subset runs less one whole-set point, the training time per step from all runs.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from train_step_rate import machine, prepare_image  # noqa: E402 - the same machine line and shards

from pipelines.settings import get as setting  # noqa: E402 - the pipeline's own defaults
from tasks.onednn import onednn_env  # noqa: E402 - the worker's environment, as the pipeline sets it

DEFAULTS = {"model": "cnn", "model_params": {}, "deterministic": False,
            **{key: setting(f"image.{key}").default
               for key in ("batch_size", "learning_rate", "lr_schedule", "checkpoint_every", "seed")}}
DEFAULT_STEPS = setting("image.steps").default
WHOLE = 10 ** 9  # a subset larger than the validation set: the worker validates on the whole set


def run_worker(model: str, data: Path, steps: int, subset: int | None, tmp: Path, test_augment: str) -> dict:
    """The training worker's record: seconds of training, validation and checkpoints."""
    out = Path(tempfile.mkdtemp(dir=tmp))
    request = {**DEFAULTS, "model": model, "data_dir": str(data), "out_dir": str(out), "steps": steps,
               "test_augment": test_augment, **({"validation_subset": subset} if subset else {})}
    (out / "request.json").write_text(json.dumps(request))
    done = subprocess.run([sys.executable, "-m", "tasks.image.train", str(out / "request.json")], cwd=ROOT,
                          capture_output=True, text=True, env={**os.environ, **onednn_env("auto", model)})
    for line in done.stdout.splitlines():
        if line.startswith("@@tfpipe ") and '"result"' in line:
            record = json.loads(line[len("@@tfpipe "):])["result"]
            validation = record["validation_seconds"]
            training = record["train_seconds"] - validation - record["checkpoint_seconds"]
            points = json.loads((out / "history.json").read_text())["validation"]
            return {"validation": validation, "training": training, "share": validation / training,
                    "samples": [row["samples"] for row in points], "val": record["data"]["val"]}
    sys.exit(f"tasks.image.train failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")


def spread(values: list[float]) -> str:
    return f"{100 * statistics.median(values):.1f}% ({100 * min(values):.1f}-{100 * max(values):.1f}%)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=1000, help="steps per run (a multiple of 500)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--model", default="cnn", choices=["cnn", "mlp"], help="default: cnn, the default model")
    parser.add_argument("--fashion", type=Path, default=Path("/usr/share/datasets/fashion-mnist"))
    parser.add_argument("--test-augment", default="none", choices=["none", "mirror"],
                        help="none: as on the default dataset (MNIST); mirror: as image.test_augment: auto "
                             "predicts on Fashion-MNIST, the image and its mirror at every validation point")
    args = parser.parse_args()
    points = args.steps // DEFAULTS["checkpoint_every"]
    print(f"# Validation share of training time, default image config ({args.model}), {args.steps} steps per run, "
          f"{points} validation points, test_augment {args.test_augment}\n# {machine()}", flush=True)
    runs: dict[str, list[dict]] = {"subset": [], "whole": []}
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        shards = prepare_image(args.fashion, tmp)
        for i in range(args.rounds):
            order = ["subset", "whole"] if i % 2 == 0 else ["whole", "subset"]  # each side leads in turn
            for side in order:
                runs[side].append(run_worker(args.model, shards, args.steps, WHOLE if side == "whole" else None, tmp,
                                             args.test_augment))
                run = runs[side][-1]
                print(f"  round {i + 1} {side:<6}: validation {run['validation']:6.1f} s, training "
                      f"{run['training']:7.1f} s, share {100 * run['share']:.1f}%, samples per point "
                      f"{run['samples']}", flush=True)
    per_step = statistics.median(run["training"] / args.steps for side in runs.values() for run in side)
    whole_point = statistics.median(run["validation"] / points for run in runs["whole"])
    subset_point = statistics.median((run["validation"] - whole_point) / max(1, points - 1) for run in runs["subset"])
    default_points = DEFAULT_STEPS // DEFAULTS["checkpoint_every"]
    before = default_points * whole_point / (DEFAULT_STEPS * per_step)
    after = ((default_points - 1) * subset_point + whole_point) / (DEFAULT_STEPS * per_step)
    print(f"\n# medians of {args.rounds} alternating rounds; share = validation seconds / training seconds\n"
          f"| validation | share over {args.steps} steps, median (min-max) | seconds per point | "
          f"projected share over {DEFAULT_STEPS} steps |\n|---|---|---|---|")
    print(f"| whole set ({runs['whole'][0]['val']:,}) at every checkpoint (before) | "
          f"{spread([r['share'] for r in runs['whole']])} | "
          f"{whole_point:.2f} | {100 * before:.1f}% |")
    print(f"| 2,000-sample subset, whole set at the last step | {spread([r['share'] for r in runs['subset']])} | "
          f"{subset_point:.2f} (subset) | {100 * after:.1f}% |")
    print(f"# training {per_step * 1000:.1f} ms per step (median); load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
