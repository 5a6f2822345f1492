"""Overhead of `--executor slurm` vs `--executor local` on the same real run, side by side.

A fresh ImageRun (download, preprocess, train `--steps`, evaluate: three stage processes) on a
generated dataset, `--repeats` times per executor, alternating local and slurm so both see the
same machine load; prints the machine, each time, the medians and the spread of the
per-pair ratio. Uses the cluster named by $SLURM_CONF, or (as root, with slurm-wlm and munge
installed) starts the one-node test cluster of tests/slurm_cluster.py for the run.

    python bench/executor_overhead.py --repeats 3 --steps 500
    python bench/executor_overhead.py --repeats 1 --steps 20       # quick check
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import machine  # bench/machine.py: the script's own folder is on sys.path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def timed_run(args: list[str], workspace: Path, mirror: Path, env: dict[str, str]) -> float:
    env = {**env, "TFPIPE_WORKSPACE": str(workspace), "TFPIPE_DATA_MIRROR": str(mirror)}
    command = [sys.executable, "-m", "luigi", "--module", "pipelines", *args, "--local-scheduler"]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited {done.returncode}:\n{(done.stdout + done.stderr)[-3000:]}")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--poll", type=float, default=2.0, help="slurm executor poll_s (its default: 2)")
    args = parser.parse_args()

    from tests import slurm_cluster
    from tests.conftest import make_image_set, write_idx_folder

    with tempfile.TemporaryDirectory(prefix="tfpipe-bench-") as tmp_name:
        tmp = Path(tmp_name)
        cluster = None
        env = dict(os.environ)
        if "SLURM_CONF" not in env:
            reason = slurm_cluster.why_not()
            if reason:
                raise SystemExit(f"no SLURM_CONF and no test cluster: {reason}")
            cluster = slurm_cluster.start(tmp / "slurm")
            env["SLURM_CONF"] = str(cluster.conf)
        try:
            data = write_idx_folder(tmp / "data" / "tiny", make_image_set(num_train=2000, num_test=500, size=28))
            (tmp / "mirror").mkdir()
            run = ["ImageRun", "--dataset", "arrays", "--dataset-options", json.dumps({"path": str(data)}),
                   "--model", "mlp", "--steps", str(args.steps), "--batch-size", "50",
                   "--checkpoint-every", str(max(1, args.steps // 2)), "--validation-fraction", "0.1"]
            executors = {"local": ["--executor", "local"],
                         "slurm": ["--executor", "slurm", "--executor-options", json.dumps({"poll_s": args.poll})]}
            times: dict[str, list[float]] = {name: [] for name in executors}
            for repeat in range(args.repeats):
                order = list(executors) if repeat % 2 == 0 else list(reversed(executors))
                for name in order:
                    seconds = timed_run(run + executors[name], tmp / f"{name}-{repeat}", tmp / "mirror", env)
                    times[name].append(seconds)
                    print(f"repeat {repeat + 1} {name:<5} {seconds:7.2f} s", flush=True)
        finally:
            if cluster is not None:
                cluster.stop()

    ratios = [slurm / local for slurm, local in zip(times["slurm"], times["local"])]
    local, slurm = statistics.median(times["local"]), statistics.median(times["slurm"])
    print(f"# machine: {machine()} (Slurm: one-node test cluster on this machine)")
    print(f"ImageRun, {args.steps} mlp steps, 3 stage processes; median of {args.repeats} runs each, alternating")
    print(f"local {local:.2f} s, slurm {slurm:.2f} s: +{slurm - local:.2f} s, ratio {slurm / local:.2f} "
          f"(per pair {min(ratios):.2f} .. {max(ratios):.2f})")
    print(json.dumps({"local_s": times["local"], "slurm_s": times["slurm"], "ratios": ratios}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
