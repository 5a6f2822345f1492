"""GPU check: train the `cnn` plugin under several device policies, side by side.

For each policy (TensorFlow's defaults as the plain baseline, then `gpu`,
`gpu+memory_growth`, `gpu+memory_limit`), a fresh subprocess applies the policy
exactly as a training worker does (tasks.devices in this process, then
tasks.tf_runtime.start_tensorflow in the child), trains `cnn` on random
MNIST-shaped data with the strategy's train step, and reports throughput and
the GPU memory TensorFlow reserved (tf.config.experimental.get_memory_info).

    python bench/gpu_check.py                       # 300 steps, batch 128
    python bench/gpu_check.py --steps 50 --limit 2048

Without a visible GPU it says so and exits 0.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

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


def child(request: dict) -> dict:
    from tasks import tf_runtime

    tf = tf_runtime.start_tensorflow(0, False, request["device"])
    import keras
    import numpy as np

    strategy = tf_runtime.strategy()
    batch, steps = request["batch_size"], request["steps"]
    rng = np.random.default_rng(0)
    x = tf.constant(rng.random((batch * 4, 28, 28, 1), dtype=np.float32))
    y = tf.constant(rng.integers(0, 10, batch * 4).astype(np.int32))
    with strategy.scope():
        model, _ = tf_runtime.build_model("cnn", {"input_shape": [28, 28, 1], "num_classes": 10}, {},
                                          "image_classifier")
        optimizer = keras.optimizers.Adam(1e-3)
        model(x[:1])
        optimizer.build(model.trainable_variables)
    per_replica = batch // strategy.num_replicas_in_sync

    def replica_step(offset):
        start = offset + tf.distribute.get_replica_context().replica_id_in_sync_group * per_replica
        xb, yb = x[start:start + per_replica], y[start:start + per_replica]
        with tf.GradientTape() as tape:
            logits = model(xb, training=True)
            loss = tf.reduce_sum(keras.losses.sparse_categorical_crossentropy(yb, logits, from_logits=True)) / batch
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        return loss

    @tf.function
    def step(offset):
        return strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(replica_step, args=(offset,)), None)

    float(step(tf.constant(0)))  # compile
    started = time.perf_counter()
    for i in range(steps):
        loss = step(tf.constant((i % 4) * batch))
    float(loss)
    seconds = time.perf_counter() - started
    memory = {}
    for device in tf.config.list_logical_devices("GPU"):
        info = tf.config.experimental.get_memory_info(device.name.replace("/device:", ""))
        memory[device.name] = {key: round(value / 2**20, 1) for key, value in info.items()}
    return {"samples_per_s": round(steps * batch / seconds, 1), "seconds": round(seconds, 2),
            "reserved_mb": reserved_by_this_process(),
            "strategy": type(strategy).__name__, "gpus": len(tf.config.list_logical_devices("GPU")),
            "memory_mb": memory, "device": tf_runtime.device_record()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--limit", default="2048", help="memory_limit: MB (integer) or fraction, e.g. 0.3")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print("RESULT " + json.dumps(child(json.loads(Path(args.child).read_text()))), flush=True)
        return 0

    visible = devices.visible_gpus()
    if not visible:
        print("gpu_check: no GPU visible (nvidia-smi / CUDA_VISIBLE_DEVICES show none); nothing to "
              "measure. Run this on a machine with an NVIDIA GPU and `pip install -e '.[gpu]'`.")
        return 0
    limit = float(args.limit) if "." in args.limit else int(args.limit)
    cases = [("tensorflow defaults", [], {}), ("gpu", ["gpu"], {}),
             ("gpu+memory_growth", ["gpu", "memory_growth"], {}),
             (f"gpu+memory_limit({args.limit})", ["gpu", "memory_limit"], {"limit": limit})]
    print(f"GPUs visible: {', '.join(visible)}; cnn, {args.steps} steps of batch {args.batch_size}\n")
    print(f"{'policy':<28} {'samples/s':>10} {'reserved MB':>12} {'in use MB':>10} {'peak MB':>10}  strategy")
    with tempfile.TemporaryDirectory() as scratch:
        for label, names, options in cases:
            with devices.applied(names, options, Path(scratch) / "slots", "gpu_check") as plan:
                request = Path(scratch) / "request.json"
                request.write_text(json.dumps({"device": plan.request(), "steps": args.steps,
                                               "batch_size": args.batch_size}))
                done = __import__("subprocess").run(
                    [sys.executable, __file__, "--child", str(request)], capture_output=True, text=True,
                    env=child_environment(plan.env))
            lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
            if done.returncode != 0 or not lines:
                last = (done.stderr.strip().splitlines() or ["no output"])[-1]
                print(f"{label:<28} failed: {last}")
                continue
            result = json.loads(lines[-1][len("RESULT "):])
            first = next(iter(result["memory_mb"].values()), {})
            reserved = result["reserved_mb"] if result["reserved_mb"] is not None else "-"
            print(f"{label:<28} {result['samples_per_s']:>10} {reserved:>12} {first.get('current', '-'):>10} "
                  f"{first.get('peak', '-'):>10}  {result['strategy']} on {result['gpus']} GPU(s)")
    print("\n(reserved: what nvidia-smi says the training process holds, TensorFlow's whole pool; in use/"
          "peak: tf.config.experimental.get_memory_info on the first GPU.)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
