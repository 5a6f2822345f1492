"""Training throughput, characters per second: tfpipe's text training worker vs a plain Keras
script training the same model the same way (same data, windows, batch, optimizer, steps).

    python bench/text_training_throughput.py --corpus /path/to/nietzsche.txt            # 300 steps each
    python bench/text_training_throughput.py --corpus ... --steps 20 --units 64         # a quick check

Each side runs in a fresh Python process, one after the other, in this one run.
tfpipe's figure is its own record (chars_per_s of tasks.training_loop: training steps,
tracing included, validation passes and checkpoint writes timed apart); the plain
figure is steps*batch*window over the time of model.fit (tracing included).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def prepare(corpus: Path, folder: Path) -> None:
    """The same files PreprocessText writes (lower-cased, last 5% held out)."""
    import numpy as np

    from plugins.datasets.text import decode_corpus
    from tasks.text.prep import build_vocab, encode, normalise, split_holdout

    text = normalise(decode_corpus(corpus.read_bytes(), str(corpus)), lowercase=True)
    vocab = build_vocab(text)
    train, held = split_holdout(encode(text, vocab), 0.05)
    np.save(folder / "train_ids.npy", train)
    np.save(folder / "heldout_ids.npy", held)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "meta.json").write_text(json.dumps({"vocab_size": len(vocab),
                                                  "counts": {"train": len(train), "heldout": len(held)}}))


def run_tfpipe(args, data: Path, out: Path) -> float:
    request = {"data_dir": str(data), "out_dir": str(out), "model": args.model,
               "model_params": {"units": args.units}, "window": args.window, "steps": args.steps,
               "batch_size": args.batch_size, "learning_rate": args.learning_rate,
               "checkpoint_every": args.checkpoint_every, "seed": 1, "deterministic": False}
    (out / "request.json").write_text(json.dumps(request))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "tasks.text.train", str(out / "request.json")],
                          env=env, capture_output=True, text=True, check=True)
    for line in done.stdout.splitlines():
        if line.startswith("@@tfpipe ") and '"result"' in line:
            return json.loads(line[len("@@tfpipe "):])["result"]["chars_per_s"]
    raise RuntimeError(done.stdout[-2000:] + done.stderr[-2000:])


def plain_keras(args, data: Path) -> float:
    """What a person writes by hand: windows -> tf.data -> compile -> fit."""
    import keras
    import numpy as np
    import tensorflow as tf

    from plugins import registry

    keras.utils.set_random_seed(1)
    meta = json.loads((data / "meta.json").read_text())
    ids = np.load(data / "train_ids.npy")
    order = np.random.default_rng(1).permutation(len(ids) - args.window)
    starts = order[: args.steps * args.batch_size].astype(np.int32)
    text = tf.constant(ids)
    offsets = tf.range(args.window + 1, dtype=tf.int32)

    def window(start):
        seq = tf.gather(text, start + offsets)
        return seq[:-1], seq[1:]

    dataset = (tf.data.Dataset.from_tensor_slices(starts).map(window).batch(args.batch_size, drop_remainder=True)
               .prefetch(tf.data.AUTOTUNE))
    model = registry.load("models", args.model).build({"vocab_size": meta["vocab_size"]}, units=args.units)
    model.compile(optimizer=keras.optimizers.Adam(args.learning_rate, clipnorm=5.0),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    started = time.perf_counter()
    model.fit(dataset, epochs=1, steps_per_epoch=args.steps, verbose=0)
    return args.steps * args.batch_size * args.window / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", default=str(ROOT.parent / "shared" / "data" / "nietzsche.txt"))
    parser.add_argument("--model", default="lstm")
    parser.add_argument("--units", type=int, default=256)
    parser.add_argument("--window", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--checkpoint-every", type=int, default=250)
    parser.add_argument("--learning-rate", type=float, default=0.004)
    parser.add_argument("--plain-only", metavar="DATA_DIR", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.plain_only:  # the child process of the plain side
        print(json.dumps({"chars_per_s": plain_keras(args, Path(args.plain_only))}))
        return
    with tempfile.TemporaryDirectory() as tmp:
        data, out = Path(tmp) / "data", Path(tmp) / "train"
        data.mkdir(), out.mkdir()
        prepare(Path(args.corpus), data)
        flags = [f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items() if k not in ("plain_only", "corpus")]
        plain = subprocess.run([sys.executable, __file__, *flags, "--plain-only", str(data)],
                               capture_output=True, text=True, check=True)
        plain_rate = json.loads(plain.stdout.strip().splitlines()[-1])["chars_per_s"]
        tfpipe_rate = run_tfpipe(args, data, out)
    print(f"{args.model} {args.units} units, window {args.window}, batch {args.batch_size}, {args.steps} steps, "
          f"{os.cpu_count()} CPUs")
    print(f"{'trainer':<44} {'chars/s':>10}")
    print(f"{'plain Keras (compile + fit)':<44} {plain_rate:>10.0f}")
    print(f"{'tfpipe (tasks.text.train, checkpoints)':<44} {tfpipe_rate:>10.0f}")
    print(f"tfpipe / plain: {tfpipe_rate / plain_rate:.2f}x")


if __name__ == "__main__":
    main()
