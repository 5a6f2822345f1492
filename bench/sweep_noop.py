"""Wall time of rerunning a complete 24-trial sweep with nothing changed (and of explaining it).

python bench/sweep_noop.py [--repeats 7] [--workers 2] [--folder DIR]

Builds the tiny image dataset of the tests and a 24-trial grid (4 learning rates x 3 hidden widths
x 2 seeds, mlp, 10 steps) in a temporary folder, runs the sweep once to complete it (this part
trains: minutes on 2 cores), then times `luigi --module pipelines Sweep --config sweep.yaml
--local-scheduler` and `python -m pipelines explain Sweep --config sweep.yaml`, each the median of
--repeats runs, wall and CPU time. It also reports whether the no-op run imported numpy or
TensorFlow. --folder DIR keeps the trained sweep for the next call.
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import make_image_set, write_idx_folder  # noqa: E402

SWEEP = """image:
  dataset: arrays
  model: mlp
  steps: 10
  batch_size: 20
  checkpoint_every: 10
  validation_fraction: 0.125
datasets:
  arrays:
    path: {data}
sweep:
  path: image
  method: grid
  metric: test_accuracy
  parameters:
    image.learning_rate: [0.001, 0.003, 0.01, 0.03]
    models.mlp.hidden_units: [8, 16, 32]
    image.seed: [1, 2]
"""
# luigi's command line, then which heavy modules the process imported.
NOOP_PROBE = ("import atexit, json, sys; atexit.register(lambda: print('MODULES', json.dumps(sorted("
              "{'numpy', 'tensorflow'} & set(sys.modules))))); sys.argv[0] = 'luigi'; "
              "from luigi.cmdline import luigi_run; luigi_run()")


def timed(command: list[str], env: dict, repeats: int, cpu: list[float] | None = None) -> list[float]:
    """Wall seconds of each run; CPU seconds (user + system) appended to `cpu`: on a loaded machine
    the wall time mostly measures the other processes."""
    times = []
    for _ in range(repeats):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
        times.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if cpu is not None:
            cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        if done.returncode:
            sys.exit(f"{' '.join(command)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--folder", help="keep data and workspace here (a second call reuses the trained sweep)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(args.folder or tmp)
        data, config = tmp / "data" / "tiny", tmp / "sweep.yaml"
        if not config.exists():  # rewritten data (gzip stamps the time) would be new data: retrained
            write_idx_folder(data, make_image_set())
            config.write_text(SWEEP.format(data=json.dumps(str(data))))
        env = {**os.environ, "TFPIPE_WORKSPACE": str(tmp / "ws"), "TFPIPE_DATA_MIRROR": str(tmp / "mirror")}
        sweep = ["Sweep", "--config", str(config), "--local-scheduler"]
        first = timed([sys.executable, "-m", "luigi", "--module", "pipelines", *sweep, "--workers",
                       str(args.workers)], env, 1)[0]
        noop = [sys.executable, "-m", "luigi", "--module", "pipelines", *sweep]
        probe = subprocess.run([sys.executable, "-c", NOOP_PROBE, "--module", "pipelines", *sweep], cwd=ROOT,
                               env=env, capture_output=True, text=True)
        heavy = next((line for line in probe.stdout.splitlines() if line.startswith("MODULES")), "MODULES ?")
        cpu: dict[str, list[float]] = {"noop": [], "explain": []}
        rows = {
            "Sweep, 24 trials, nothing to do": timed(noop, env, args.repeats, cpu["noop"]),
            "explain Sweep, 24 trials": timed([sys.executable, "-m", "pipelines", "explain", *sweep[:3]], env,
                                              args.repeats, cpu["explain"]),
        }
    load = os.getloadavg()
    print(f"# first run (24 trials, --workers {args.workers}): {first:.0f} s; median of {args.repeats} runs "
          f"below; {os.cpu_count()} CPUs, load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    print(f"# the no-op run imported: {heavy.split(' ', 1)[1]}")
    print("| command | median wall s | min wall s | max wall s | median CPU s |")
    print("|---|---|---|---|---|")
    for (name, times), cpu_times in zip(rows.items(), cpu.values()):
        print(f"| {name} | {statistics.median(times):.2f} | {min(times):.2f} | {max(times):.2f} | "
              f"{statistics.median(cpu_times):.2f} |")


if __name__ == "__main__":
    main()
