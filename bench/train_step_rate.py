"""Training step rate: tfpipe's training worker (A) vs the strongest plain `model.fit` (B), side by side.

    python bench/train_step_rate.py                                   # mlp, cnn, lstm; 5 rounds each
    python bench/train_step_rate.py --models mlp --rounds 3           # a quicker look
    python bench/train_step_rate.py --baseline /path/to/old/checkout  # also race the code before a change
    python bench/train_step_rate.py --models cnn --settings 1:0:1 50:0:1 # screen only these plain settings

Models: mlp and cnn on Fashion-MNIST (batch 50, Adam 1e-3, constant rate, 54,000 training
samples), lstm on Nietzsche (LSTM 256, window 50, batch 128, Adam 1e-2 clipped to norm 5, the
text path's weight decay).
Both sides build the model with the same plugin and compute loss and accuracy every step.

A runs the training worker itself (`python -m tasks.image.train` / `tasks.text.train`, the
code a pipeline runs, with its defaults: checkpoints, validation, jit_compile and onednn auto) and reads
its own steady-state rate from its result. B is a plain Keras script: for each model every
combination of steps_per_execution in {1, 50}, jit_compile off/on and oneDNN's CPU kernels
off/on (TF_ENABLE_ONEDNN_OPTS, which TensorFlow leaves off on CPUs without AVX-512) is tried once; those
within 80% of the fastest race on, and each round's B is the fastest of them in that round;
A runs as many times in each round and counts its fastest run, so that neither side gains
from the noise of taking the best of several runs (input: numpy arrays for mlp, tf.data
cache/shuffle/batch/prefetch for cnn, tf.data of vectorised window gathers for lstm). A and B
then alternate, each side leading in turn, each run in a fresh process.

The rule, the same on both sides: the clock is read when the first step at or after step
WARMUP_STEPS (tasks.training_loop, 200) has completed, that is at the end of the compiled call
or log window that contains it, and when the last step has completed; the rate is the steps
in between over that time. Tracing, XLA compilation, tf.data start-up and model building fall
before it. A's validation passes and checkpoint writes (every checkpoint_every steps) are
timed apart and left out, as its record does. Each side also reports the same steps per
CPU-second of its process: on a shared machine that figure moves less than the wall clock.
Read the ratio of each round's pair, not the absolute rates.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from machine import cpu_model  # noqa: E402 - bench/machine.py, the name every bench script prints

from pipelines import settings  # noqa: E402 - the declared defaults, no TensorFlow
from tasks.onednn import ENV, onednn_env  # noqa: E402 - A's environment, as the pipeline sets it
from tasks.training_loop import WARMUP_STEPS  # noqa: E402 - both sides count by the loop's constant

IMAGE = {"batch_size": 50, "learning_rate": 1e-3, "checkpoint_every": 500}
# The text path races at its declared defaults, so the bench follows them when they change.
TEXT = {**{key: settings.get(f"text.{key}").default
           for key in ("window", "batch_size", "learning_rate", "weight_decay", "checkpoint_every")},
        "clipnorm": 5.0}
STEPS = {"mlp": 3000, "cnn": 500, "lstm": 400}
CANDIDATES = [(spe, jit, onednn) for spe in (1, 50) for jit in (False, True) for onednn in (False, True)]
KEEP = 0.8


# ----- data, prepared once -------------------------------------------------------------------

def prepare_image(fashion: Path, tmp: Path) -> Path:
    """The training shards tfpipe's PreprocessImages writes (the A side reads them)."""
    mirror = tmp / "mirror"
    mirror.mkdir()
    (mirror / "fashion_mnist").symlink_to(fashion)
    done = subprocess.run([sys.executable, "-m", "luigi", "--module", "tasks.image.preprocess", "PreprocessImages",
                           "--workspace", str(tmp / "ws"), "--dataset", "fashion_mnist", "--dataset-options", "{}",
                           "--validation-fraction", "0.1", "--split-seed", "0", "--local-scheduler"],
                          cwd=ROOT, env={**os.environ, "TFPIPE_DATA_MIRROR": str(mirror)},
                          capture_output=True, text=True)
    folders = list((tmp / "ws" / "preprocess").glob("fashion_mnist-*"))
    if done.returncode or not folders:
        sys.exit(f"preprocessing failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return folders[0]


def prepare_text(corpus: Path, folder: Path) -> Path:
    """The same files PreprocessText writes (lower-cased, 5% for validation, the last 5% held out)."""
    import numpy as np

    from plugins.datasets.text import decode_corpus
    from tasks.text.prep import build_vocab, encode, normalise, split_text

    folder.mkdir()
    text = normalise(decode_corpus(corpus.read_bytes(), str(corpus)), lowercase=True)
    vocab = build_vocab(text)
    train, valid, held = split_text(encode(text, vocab), 0.05, 0.05)
    np.save(folder / "train_ids.npy", train)
    np.save(folder / "valid_ids.npy", valid)
    np.save(folder / "heldout_ids.npy", held)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    counts = {"train": len(train), "validation": len(valid), "heldout": len(held)}
    (folder / "meta.json").write_text(json.dumps({"vocab_size": len(vocab), "counts": counts}))
    return folder


# ----- A: the tfpipe worker --------------------------------------------------------------------

def run_tfpipe(model: str, data: Path, steps: int, tmp: Path, root: Path = ROOT) -> tuple[float, float]:
    """(steps/s, steps per CPU-second) of the training worker of the checkout `root`, from its own
    steady-state record."""
    out = Path(tempfile.mkdtemp(dir=tmp))
    common = {"data_dir": str(data), "out_dir": str(out), "model": model, "model_params": {}, "steps": steps,
              "seed": 1, "deterministic": False}
    if model == "lstm":
        module, unit = "tasks.text.train", "chars"
        request = {**common, **{k: v for k, v in TEXT.items() if k != "clipnorm"}}
        per_step = TEXT["batch_size"] * TEXT["window"]
    else:
        module, unit = "tasks.image.train", "samples"
        request = {**common, **IMAGE, "lr_schedule": "constant"}
        per_step = IMAGE["batch_size"]
    (out / "request.json").write_text(json.dumps(request))
    env = {**os.environ, "PYTHONPATH": str(root), **onednn_env("auto", model)}
    done = subprocess.run([sys.executable, "-m", module, str(out / "request.json")], cwd=root,
                          env=env, capture_output=True, text=True)
    for line in done.stdout.splitlines():
        if line.startswith("@@tfpipe ") and '"result"' in line:
            result = json.loads(line[len("@@tfpipe "):])["result"]
            cpu = result.get(f"steady_{unit}_per_cpu_s")  # not recorded before this bench's first version
            return result[f"steady_{unit}_per_s"] / per_step, cpu / per_step if cpu else float("nan")
    sys.exit(f"{module} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")


# ----- B: the plain Keras script (run in its own process) ------------------------------------

def load_idx(folder: Path, name: str, offset: int):
    import numpy as np

    with gzip.open(folder / name) as handle:
        return np.frombuffer(handle.read(), np.uint8, offset=offset)


def plain_fit(model_name: str, data: Path, steps: int, spe: int, jit: bool) -> dict:
    """What a Keras expert writes: load, build, compile(steps_per_execution, jit_compile), fit."""
    import keras
    import numpy as np
    import tensorflow as tf

    from plugins import registry

    keras.utils.set_random_seed(1)
    fit_args: dict = {}
    if model_name == "lstm":
        meta = json.loads((data / "meta.json").read_text())
        spec, batch, optimizer = {"vocab_size": meta["vocab_size"]}, TEXT["batch_size"], keras.optimizers.Adam(
            TEXT["learning_rate"], clipnorm=TEXT["clipnorm"], weight_decay=TEXT["weight_decay"] or None)
        text = tf.constant(np.load(data / "train_ids.npy").astype(np.int32))
        offsets = tf.range(TEXT["window"] + 1)

        def windows(starts):  # one gather per batch
            sequences = tf.gather(text, starts[:, None] + offsets[None, :])
            return sequences[:, :-1], sequences[:, 1:]

        starts = np.random.default_rng(1).permutation(len(text) - TEXT["window"] - 1).astype(np.int32)
        per_epoch = len(starts) // batch
        inputs = (tf.data.Dataset.from_tensor_slices(starts).batch(batch, drop_remainder=True).map(windows)
                  .repeat().prefetch(tf.data.AUTOTUNE))
        fit_args = {"steps_per_epoch": steps}
    else:
        x = load_idx(data, "train-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28, 1).astype("float32") / 255
        y = load_idx(data, "train-labels-idx1-ubyte.gz", 8).astype("int32")
        held = round(0.1 * len(x))
        x, y = x[held:], y[held:]  # as many training samples as tfpipe's 10% validation split leaves
        spec, batch = {"input_shape": [28, 28, 1], "num_classes": 10}, IMAGE["batch_size"]
        optimizer = keras.optimizers.Adam(IMAGE["learning_rate"])
        per_epoch = len(x) // batch
        if model_name == "mlp":  # numpy in: Keras builds its own input pipeline
            inputs, fit_args = x, {"y": y, "batch_size": batch, "shuffle": True}
        else:
            inputs = (tf.data.Dataset.from_tensor_slices((x, y)).cache().shuffle(len(x), seed=1)
                      .batch(batch, drop_remainder=True).repeat().prefetch(tf.data.AUTOTUNE))
            fit_args = {"steps_per_epoch": steps}
    plugin = registry.load("models", model_name)
    model = plugin.build(spec, **plugin.DEFAULTS)
    model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"], steps_per_execution=spe, jit_compile=jit)
    clock = clock_callback(keras, WARMUP_STEPS, steps, fit_args.get("steps_per_epoch", per_epoch))
    epochs = 1 if "steps_per_epoch" in fit_args else -(-steps // per_epoch)
    model.fit(inputs, epochs=epochs, verbose=0, callbacks=[clock], **fit_args)
    (first, started, cpu_started), (last, ended, cpu_ended) = clock.marks[0], clock.marks[-1]
    return {"steps_per_s": (last - first) / (ended - started),
            "steps_per_cpu_s": (last - first) / (cpu_ended - cpu_started), "timed_steps": last - first}


def clock_callback(keras, warmup: int, total: int, per_epoch: int):
    """Reads the clock at the end of the compiled call holding step `warmup` and at the last step."""

    class Clock(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.marks, self.offset = [], 0

        def on_epoch_begin(self, epoch, logs=None):
            self.offset = epoch * per_epoch

        def on_train_batch_end(self, batch, logs=None):  # once per compiled call: `batch` is its last step
            done = self.offset + batch + 1
            if (not self.marks and done >= warmup) or (self.marks and done >= total):
                self.marks.append((done, time.perf_counter(), time.process_time()))
            if done >= total:
                self.model.stop_training = True

    return Clock()


def run_plain(model: str, data: Path, steps: int, spe: int, jit: bool, onednn: bool) -> tuple[float, float] | None:
    """(steps/s, steps per CPU-second) of the plain script, or None where it fails."""
    done = subprocess.run([sys.executable, __file__, "--plain", model, "--data", str(data), "--steps", str(steps),
                           "--spe", str(spe), "--jit", str(int(jit))], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, ENV: str(int(onednn))})
    if done.returncode:
        print(f"  plain {model} {label(spe, jit, onednn)} failed: {done.stderr.strip().splitlines()[-1:]}")
        return None
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result["steps_per_s"], result["steps_per_cpu_s"]


# ----- the comparison ------------------------------------------------------------------------

def label(spe: int, jit: bool, onednn: bool) -> str:
    return f"steps_per_execution={spe} jit_compile={jit} oneDNN={'on' if onednn else 'off'}"


def machine() -> str:
    import tensorflow as tf

    model = cpu_model()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (f"{model}, {cores} cores usable ({os.cpu_count()} online), TensorFlow {tf.__version__}, "
            f"Python {platform.python_version()}, load average {os.getloadavg()[0]:.2f}")


def compare(model: str, ours_data: Path, plain_data: Path, steps: int, rounds: int, tmp: Path,
            baseline: Path | None, settings: list[tuple[int, bool, bool]] | None = None) -> dict:
    """Each side reads its own copy of the data: A tfpipe's preprocessed folder, B the raw files."""
    print(f"\n## {model}: {steps} steps per run, steady state = the steps after the first "
          f"{WARMUP_STEPS} (rule in the docstring)", flush=True)
    tried = {}
    for key in settings or CANDIDATES:
        tried[key] = rate = run_plain(model, plain_data, steps, *key)
        if rate is not None:
            print(f"  plain model.fit {label(*key)}: {rate[0]:8.1f} steps/s ({rate[1]:.1f} per CPU-second)",
                  flush=True)
    best = max(rate[0] for rate in tried.values() if rate)
    # On a shared machine one run can mislead: every setting within KEEP of the fastest races on.
    kept = [key for key, rate in tried.items() if rate and rate[0] >= KEEP * best]
    if settings:
        print("  (screen limited by --settings to the settings named; an earlier screen on this machine chose them)")
    print(f"  plain settings kept: {'; '.join(label(*key) for key in kept)}; "
          "each round's B is the fastest of them, and A the fastest of as many runs", flush=True)
    ours, plain, winners, before = [], [], [], []
    sides = ["A", "B"] + (["A0"] if baseline else [])
    for i in range(rounds):
        order = sides[i % len(sides):] + sides[:i % len(sides)]  # each side leads in turn
        for side in order:
            # Each side's round figure is the fastest of len(kept) runs: the same rule for both.
            if side in ("A", "A0"):
                root = baseline if side == "A0" else ROOT
                fastest = max((run_tfpipe(model, ours_data, steps, tmp, root=root) for _ in kept), key=lambda r: r[0])
                (before if side == "A0" else ours).append(fastest)
            else:
                runs = {key: run_plain(model, plain_data, steps, *key) for key in kept}
                key, rate = max(((key, rate) for key, rate in runs.items() if rate), key=lambda item: item[1][0])
                plain.append(rate)
                winners.append(key)
        print(f"  round {i + 1} ({''.join(order)}): tfpipe {ours[-1][0]:8.1f}  plain {plain[-1][0]:8.1f} steps/s "
              f"({label(*winners[-1])})  ratio {ours[-1][0] / plain[-1][0]:.2f}x  "
              f"per CPU-second {ours[-1][1]:.1f} vs {plain[-1][1]:.1f}"
              + (f"  baseline {before[-1][0]:.1f} steps/s, ratio {before[-1][0] / plain[-1][0]:.2f}x" if baseline
                 else ""), flush=True)
    result = {"model": model, "plain": "; ".join(sorted({label(*key) for key in winners})),
              "b": statistics.median(b[0] for b in plain), **summary(ours, plain)}
    if baseline:
        result["baseline"] = summary(before, plain)
    # Also printed here, so a run cut short still leaves each finished model's figures.
    print(f"  {model}: ratio median {result['ratio']:.2f}x ({result['low']:.2f}-{result['high']:.2f}x), per CPU-second "
          f"{result['cpu_ratio']:.2f}x ({result['cpu_low']:.2f}-{result['cpu_high']:.2f}x)", flush=True)
    return result


def summary(ours: list[tuple[float, float]], plain: list[tuple[float, float]]) -> dict:
    """Median rate of one side, and median and range of its ratio to the plain script's, per round."""
    ratios = [a[0] / b[0] for a, b in zip(ours, plain)]
    cpu_ratios = [a[1] / b[1] for a, b in zip(ours, plain) if a[1] == a[1]] or [float("nan")]  # nan: not recorded
    return {"a": statistics.median(a[0] for a in ours), "ratio": statistics.median(ratios), "low": min(ratios),
            "high": max(ratios), "cpu_ratio": statistics.median(cpu_ratios), "cpu_low": min(cpu_ratios),
            "cpu_high": max(cpu_ratios)}


def plain_setting(item: str, parser: argparse.ArgumentParser) -> tuple[int, bool, bool]:
    parts = item.split(":")
    if len(parts) != 3 or not all(part.isdigit() for part in parts) or not set(parts[1:]) <= {"0", "1"}:
        parser.error(f"--settings {item}: write SPE:JIT:ONEDNN, e.g. 50:0:1 (steps_per_execution 50, "
                     "jit_compile off, oneDNN on)")
    return int(parts[0]), parts[1] == "1", parts[2] == "1"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["mlp", "cnn", "lstm"], choices=["mlp", "cnn", "lstm"])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, help="steps per run (default: mlp 3000, cnn 500, lstm 400)")
    parser.add_argument("--baseline", type=Path, metavar="CHECKOUT",
                        help="another tfpipe checkout (e.g. the code before a change) whose worker races too")
    parser.add_argument("--settings", nargs="+", metavar="SPE:JIT:ONEDNN",
                        help="screen only these plain settings, e.g. 1:0:1 50:0:1 (steps_per_execution:"
                             "jit_compile:oneDNN), to skip settings an earlier screen on this machine found far slower")
    parser.add_argument("--fashion", type=Path, default=Path("/usr/share/datasets/fashion-mnist"))
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "data" / "nietzsche.txt")
    parser.add_argument("--plain", choices=["mlp", "cnn", "lstm"], help=argparse.SUPPRESS)  # child process
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--spe", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--jit", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain:
        print(json.dumps(plain_fit(args.plain, args.data, args.steps, args.spe, bool(args.jit))))
        return

    settings = [plain_setting(item, parser) for item in args.settings or []]
    print(f"# Training step rate, tfpipe (A) vs the strongest plain model.fit (B)\n# {machine()}", flush=True)
    results = []
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        shards = prepare_image(args.fashion, tmp) if {"mlp", "cnn"} & set(args.models) else None
        text = prepare_text(args.corpus, tmp / "text") if "lstm" in args.models else None
        for model in args.models:
            steps = args.steps or STEPS[model]
            ours_data, plain_data = (text, text) if model == "lstm" else (shards, args.fashion)
            results.append(compare(model, ours_data, plain_data, steps, args.rounds, tmp, args.baseline,
                                   settings))
    print(f"\n# medians of {args.rounds} alternating rounds; ratio = A / B per round (per CPU-second: the same "
          "steps over this process's CPU time)\n| model | tfpipe steps/s | plain steps/s (setting) | ratio median | "
          "ratio min-max | per CPU-second: median, min-max |\n|---|---|---|---|---|---|")
    for r in results:
        for label, side in [("", r)] + ([(" (baseline)", r["baseline"])] if "baseline" in r else []):
            cpu = (f"{side['cpu_ratio']:.2f}x, {side['cpu_low']:.2f}-{side['cpu_high']:.2f}x"
                   if side["cpu_ratio"] == side["cpu_ratio"] else "not recorded")
            print(f"| {r['model']}{label} | {side['a']:.1f} | {r['b']:.1f} ({r['plain']}) | {side['ratio']:.2f}x | "
                  f"{side['low']:.2f}-{side['high']:.2f}x | {cpu} |")
    print(f"# load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
