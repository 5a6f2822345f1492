"""Overhead of running through luigid vs --local-scheduler, side by side in one run.

For each scheduler: a complete (no-op) ImageRun and a small real run (fresh
workspace: download, preprocess, train, evaluate), `--repeats` times each,
interleaved; prints medians. Uses a generated dataset (or --mirror with --dataset).

    python bench/luigid_overhead.py --repeats 5 --steps 500
    python bench/luigid_overhead.py --repeats 1 --steps 20       # quick check
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_luigid(state_dir: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "pipelines", "scheduler", "--port", str(port),
                                "--state-dir", str(state_dir)], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 30
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/task_list?data={{}}", timeout=2).read()
            return process, port
        except OSError:
            if process.poll() is not None or time.time() > deadline:
                raise SystemExit("luigid did not start") from None
            time.sleep(0.1)


def timed_run(args: list[str], where: list[str], workspace: Path, mirror: Path) -> float:
    env = {**os.environ, "TFPIPE_WORKSPACE": str(workspace), "TFPIPE_DATA_MIRROR": str(mirror)}
    command = [sys.executable, "-m", "luigi", "--module", "pipelines", *args, *where, "--no-lock"]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited {done.returncode}:\n{done.stderr[-3000:]}")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=500, help="training steps of the small real run")
    parser.add_argument("--model", default="mlp")
    parser.add_argument("--dataset", default="tiny",
                        help="'tiny' is generated (read by the arrays plugin); others may need --mirror")
    parser.add_argument("--mirror", type=Path, help="data mirror root (default: a generated tiny dataset)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="tfpipe-bench-") as tmp_name:
        tmp = Path(tmp_name)
        mirror = args.mirror or tmp / "mirror"
        dataset = ["--dataset", args.dataset]
        if args.dataset == "tiny":
            from tests.conftest import make_image_set, write_idx_folder

            data = write_idx_folder(tmp / "data" / "tiny",
                                    make_image_set(num_train=2000, num_test=500, size=28))
            dataset = ["--dataset", "arrays", "--dataset-options", json.dumps({"path": str(data)})]
        run = ["ImageRun", *dataset, "--model", args.model, "--steps", str(args.steps),
               "--batch-size", "50", "--checkpoint-every", str(max(1, args.steps // 2)),
               "--validation-fraction", "0.1"]
        luigid, port = start_luigid(tmp / "luigid")
        try:
            schedulers = {"--local-scheduler": ["--local-scheduler"],
                          "luigid": ["--scheduler-host", "127.0.0.1", "--scheduler-port", str(port)]}
            noop_ws = tmp / "noop"
            timed_run(run, schedulers["--local-scheduler"], noop_ws, mirror)  # make it complete
            times: dict[tuple[str, str], list[float]] = {}
            for repeat in range(args.repeats):
                for name, where in schedulers.items():
                    times.setdefault(("no-op (complete) ImageRun", name), []).append(
                        timed_run(run, where, noop_ws, mirror))
                    fresh = tmp / f"real-{name.strip('-')}-{repeat}"
                    # Same task ids as the last run: luigid refuses to rerun a task it saw DONE in
                    # the last [scheduler] stable_done_cooldown_secs (10 s). Wait it out, untimed.
                    time.sleep(11 if name == "luigid" else 0)
                    times.setdefault((f"real ImageRun, {args.steps} steps", name), []).append(
                        timed_run(run, where, fresh, mirror))
        finally:
            luigid.terminate()
            luigid.wait(10)

    print(f"median seconds over {args.repeats} runs (model {args.model}, dataset {args.dataset})")
    print(f"{'case':<32} {'--local-scheduler':>18} {'luigid':>10} {'overhead':>10}")
    results = {}
    for case in dict.fromkeys(case for case, _ in times):
        local = statistics.median(times[(case, "--local-scheduler")])
        central = statistics.median(times[(case, "luigid")])
        results[case] = {"local": local, "luigid": central}
        print(f"{case:<32} {local:>18.2f} {central:>10.2f} {central - local:>+10.2f}")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
