"""GPU check: train the `cnn` plugin under several device policies, side by side.

Rows: a plain Keras script (model.fit, steps_per_execution 50, tf.data cached and
prefetched) under TensorFlow's defaults, then tfpipe's own compiled training call
under TensorFlow's defaults, `gpu`, `gpu+memory_growth` and `gpu+memory_limit`.
Each side decides XLA as it would by default: Keras's jit_compile="auto", and tfpipe's
jit_compile auto (tasks.tf_runtime.use_xla); both compile with XLA on a GPU.
Each row runs in a fresh subprocess that applies the policy exactly as a training
worker does (tasks.devices in this process, tasks.tf_runtime.start_tensorflow in
the child) and trains the `cnn` plugin on random MNIST-shaped records. The rows
alternate (forward, then backward) over --rounds rounds. Printed: median samples/s,
its min-max, the GPU memory the process holds (nvidia-smi) and TensorFlow's in-use
and peak (tf.config.experimental.get_memory_info), and each tfpipe row's ratio to
the plain row, per round.

Rule, both sides: one untimed chunk of 50 steps (tracing), then --steps timed steps.

    python bench/gpu_check.py                       # 2000 steps, batch 128, 3 rounds
    python bench/gpu_check.py --steps 500 --limit 2048
    python bench/gpu_check.py --cpu --steps 100 --rounds 1   # smoke check on a CPU

Without a visible GPU (and without --cpu) it says so and exits 0.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from machine import machine  # noqa: E402  bench/machine.py: the script's own folder is on sys.path

from tasks import devices  # noqa: E402  (no TensorFlow in this process)
from tasks.protocol import child_environment  # noqa: E402


def reserved_by_this_process() -> float | None:
    """GPU memory the driver says this process holds (TensorFlow's whole reservation), in MB."""
    import os
    import subprocess

    try:
        out = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=30).stdout
    except OSError:
        return None
    used = [float(mb) for pid, mb in (line.split(",") for line in out.splitlines() if "," in line)
            if int(pid) == os.getpid()]
    return sum(used) if used else None


CHUNK = 50  # steps per compiled call: tfpipe's chunk and the plain script's steps_per_execution


def child(request: dict) -> dict:
    """Train cnn for `steps` timed steps after one warm-up chunk (its tracing is not timed).

    tfpipe: the training worker's own compiled call (tasks.training_loop.compile_train_step)
    on uint8 records decoded in the step, CHUNK steps per call. plain: model.fit with
    steps_per_execution=CHUNK on a cached, repeated, prefetched tf.data pipeline; its first
    epoch (CHUNK steps, with the tracing) is not timed either. Both count samples the same way.
    """
    from tasks import tf_runtime

    tf = tf_runtime.start_tensorflow(0, False, request["device"])
    import keras
    import numpy as np

    from tasks.image.stream import decode
    from tasks.training_loop import compile_train_step

    batch, steps = request["batch_size"], request["steps"]
    rng = np.random.default_rng(0)
    rows = batch * 8
    labels = rng.integers(0, 10, rows)
    pixels = rng.integers(0, 256, (rows, 28 * 28))
    records = np.concatenate([labels[:, None] % 256, labels[:, None] // 256, pixels], axis=1).astype(np.uint8)
    strategy = tf_runtime.strategy()
    with strategy.scope():
        model, _ = tf_runtime.build_model("cnn", {"input_shape": [28, 28, 1], "num_classes": 10}, {},
                                          "image_classifier")
        optimizer = keras.optimizers.Adam(1e-3)
        model(tf.zeros([1, 28, 28, 1]))
        optimizer.build(model.trainable_variables)

    if request["side"] == "plain":
        x, y = decode(tf.constant(records), [28, 28, 1])
        data = tf.data.Dataset.from_tensor_slices((x, y)).cache().repeat().batch(batch, drop_remainder=True)
        model.compile(optimizer=optimizer, steps_per_execution=CHUNK,
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        marks = []  # (begin, end) of the timed epoch: fit's own setup stays outside, as tfpipe's does
        timer = keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: marks.append(time.perf_counter()),
                                               on_epoch_end=lambda epoch, logs: marks.append(time.perf_counter()))
        model.fit(data.prefetch(tf.data.AUTOTUNE), epochs=1, steps_per_epoch=CHUNK, verbose=0)  # tracing
        model.fit(data.prefetch(tf.data.AUTOTUNE), epochs=1, steps_per_epoch=steps, verbose=0, callbacks=[timer])
        seconds = marks[-1] - marks[-2]
        xla = bool(model.jit_compile)  # Keras's "auto": XLA on a GPU when every layer supports it
    else:
        def forward(batch_records):
            xb, yb = decode(batch_records, [28, 28, 1])
            logits = model(xb, training=True)
            loss = keras.losses.sparse_categorical_crossentropy(yb, logits, from_logits=True)
            return tf.reduce_sum(loss), {}

        xla = tf_runtime.use_xla("auto", "cnn", strategy, model, False)  # as the worker decides
        train_steps = compile_train_step(strategy, model, optimizer, tf.Variable(0, dtype=tf.int64),
                                         tf.TensorSpec([batch, records.shape[1]], tf.uint8), batch,
                                         forward, metrics=(), jit_compile=xla)
        # A host array per call, copied to the device each time, as the worker's chunks are.
        chunk = np.stack([records[(i % 8) * batch:(i % 8 + 1) * batch] for i in range(CHUNK)])
        float(train_steps(chunk)["loss"][-1])  # warm-up chunk: tracing
        started = time.perf_counter()
        for _ in range(steps // CHUNK):
            losses = train_steps(chunk)["loss"]
        float(losses[-1])
        seconds = time.perf_counter() - started
        steps = steps // CHUNK * CHUNK
    memory = {}
    for device in tf.config.list_logical_devices("GPU"):
        info = tf.config.experimental.get_memory_info(device.name.replace("/device:", ""))
        memory[device.name] = {key: round(value / 2**20, 1) for key, value in info.items()}
    return {"samples_per_s": round(steps * batch / seconds, 1), "seconds": round(seconds, 2),
            "reserved_mb": reserved_by_this_process(), "xla": xla,
            "strategy": type(strategy).__name__, "gpus": len(tf.config.list_logical_devices("GPU")),
            "memory_mb": memory, "device": tf_runtime.device_record()}


def gpu_names() -> str:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30).stdout.strip()
    except OSError:
        return "none (no nvidia-smi)"
    return "; ".join(out.splitlines()) or "none"


def run_case(scratch: Path, side: str, names: list[str], options: dict, args) -> dict | str:
    """One row's run in a fresh process under its device policy: the result, or why it failed."""
    with devices.applied(names, options, scratch / "slots", "gpu_check") as plan:
        request = scratch / "request.json"
        request.write_text(json.dumps({"device": plan.request(), "steps": args.steps, "side": side,
                                       "batch_size": args.batch_size}))
        done = subprocess.run([sys.executable, __file__, "--child", str(request)], capture_output=True,
                              text=True, env=child_environment(plan.env))
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        return (done.stderr.strip().splitlines() or ["no output"])[-1]
    return json.loads(lines[-1][len("RESULT "):])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--limit", default="2048", help="memory_limit: MB (integer) or fraction, e.g. 0.3")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cpu", action="store_true", help="smoke check without a GPU: the two rows "
                        "without a device policy, on the CPU")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print("RESULT " + json.dumps(child(json.loads(Path(args.child).read_text()))), flush=True)
        return 0

    visible = devices.visible_gpus()
    if not visible and not args.cpu:
        print("gpu_check: no GPU visible (nvidia-smi / CUDA_VISIBLE_DEVICES show none); nothing to "
              "measure. Run this on a machine with an NVIDIA GPU and `pip install -e '.[gpu]'` "
              "(--cpu runs the two rows without a device policy on the CPU, as a smoke check).")
        return 0
    limit = float(args.limit) if "." in args.limit else int(args.limit)
    cases = [("plain Keras fit, TF defaults", "plain", [], {}),
             ("tfpipe, TF defaults", "tfpipe", [], {}),
             ("tfpipe, gpu", "tfpipe", ["gpu"], {}),
             ("tfpipe, gpu+memory_growth", "tfpipe", ["gpu", "memory_growth"], {}),
             (f"tfpipe, gpu+memory_limit({args.limit})", "tfpipe", ["gpu", "memory_limit"], {"limit": limit})]
    if args.cpu:
        cases = cases[:2]
    print(f"# {machine()}; GPU: {gpu_names()}")
    print(f"GPUs visible: {', '.join(visible) or 'none'}; cnn, {args.steps} timed steps of batch "
          f"{args.batch_size} after one untimed chunk of {CHUNK} (tracing), {args.rounds} round(s), "
          f"rows alternating in each round; samples/s is the median over rounds\n")
    print(f"{'row':<36} {'samples/s':>10} {'min-max':>17} {'reserved MB':>12} {'in use MB':>10} "
          f"{'peak MB':>10}  strategy")
    results: dict[str, dict[int, dict]] = {label: {} for label, *_ in cases}  # label -> round -> result
    with tempfile.TemporaryDirectory() as scratch:
        for round_number in range(args.rounds):
            order = cases if round_number % 2 == 0 else cases[::-1]
            for label, side, names, options in order:
                result = run_case(Path(scratch), side, names, options, args)
                if isinstance(result, str):
                    print(f"{label:<36} failed: {result}", flush=True)
                else:
                    results[label][round_number] = result
    for label, *_ in cases:
        runs = list(results[label].values())
        if not runs:
            continue
        rates = sorted(run["samples_per_s"] for run in runs)
        last = runs[-1]
        first = next(iter(last["memory_mb"].values()), {})
        reserved = last["reserved_mb"] if last["reserved_mb"] is not None else "-"
        spread = f"{rates[0]:.0f}-{rates[-1]:.0f}"
        print(f"{label:<36} {statistics.median(rates):>10.0f} {spread:>17} {reserved:>12} "
              f"{first.get('current', '-'):>10} {first.get('peak', '-'):>10}  "
              f"{last['strategy']} on {last['gpus']} GPU(s), XLA {'on' if last['xla'] else 'off'}")
    plain = results[cases[0][0]]
    for label, *_ in cases[1:]:
        # Pairs of the same round only: a failed run leaves its round out.
        ratios = sorted(run["samples_per_s"] / plain[number]["samples_per_s"]
                        for number, run in results[label].items() if number in plain)
        if ratios:
            print(f"{label} / plain Keras fit: median {statistics.median(ratios):.2f}x "
                  f"(per round {ratios[0]:.2f}-{ratios[-1]:.2f})")
    print("\n(reserved: what nvidia-smi says the training process holds, TensorFlow's whole pool; in use/"
          "peak: tf.config.experimental.get_memory_info on the first GPU.)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
