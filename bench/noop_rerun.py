"""Wall and CPU time of runs with nothing to do: tfpipe FullRun vs the same graph in plain Luigi.

python bench/noop_rerun.py [--rounds 9] [--old 1000]

Builds tiny data and a config in a temporary folder, completes FullRun and
the plain pipeline once, then times, alternating A and B in each round:

1. `luigi --module plain_luigi_pipeline PlainRun` (A): a four-stage
   chain (download, preprocess, train, evaluate) in plain Luigi, written as an expert would (LocalTarget outputs, numpy
   imported inside run(), so its no-op imports neither numpy nor TensorFlow),
   vs `luigi --module pipelines FullRun` (B);
2. FullRun in that workspace (A) vs in a copy holding --old earlier runs per
   run name and stage (B: folders with manifests and index lines, as earlier
   runs with other settings leave them);
3. `python -m pipelines explain FullRun` with one changed parameter
   (image.learning_rate), in the same two workspaces.

Both sides of a pair run as fresh processes from the same folder, counted by
the same rule: the process's wall time from start to exit, and its CPU time
(user + system, from the kernel). Bytecode is written and reused, as for an
installed package. Prints the machine, medians, min-max, and the median and
min-max of the per-round ratio B/A.
"""
import argparse
import json
import os
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import machine  # bench/machine.py: the script's own folder is on sys.path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tasks import manifest_index  # noqa: E402
from tests.conftest import write_tiny_full_config  # noqa: E402


def timed(command: list[str], env: dict, cwd: Path) -> tuple[float, float]:
    """(wall s, CPU s) of one run of `command`; exits when it fails."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        sys.exit(f"{' '.join(command)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def add_old_runs(workspace: Path, count: int) -> int:
    """`count` earlier runs per completed folder: same run name, another parameter value."""
    added = 0
    for stage_dir in [path for path in workspace.iterdir() if path.is_dir() and not path.name.startswith(".")]:
        for folder in [path for path in stage_dir.iterdir() if (path / "manifest.json").is_file()]:
            manifest = json.loads((folder / "manifest.json").read_text())
            run_name = folder.name.rpartition("-")[0]
            for index in range(count):
                old = json.loads(json.dumps(manifest))
                old["components"].setdefault("params", {})["earlier_setting"] = index
                old["finished"] = f"2020-01-01T00:00:{index % 60:02d}.{index:06d}+00:00"
                target = stage_dir / f"{run_name}-{secrets.token_hex(8)}"
                target.mkdir()
                (target / "manifest.json").write_text(json.dumps(old))
                manifest_index.record(target, run_name, old)
                added += 1
    return added


def summarise(name: str, a_label: str, b_label: str, a: list, b: list) -> None:
    for label, runs in ((a_label, a), (b_label, b)):
        walls, cpus = [run[0] for run in runs], [run[1] for run in runs]
        print(f"| {name}: {label} | {statistics.median(walls):.3f} ({min(walls):.3f}-{max(walls):.3f}) | "
              f"{statistics.median(cpus):.3f} ({min(cpus):.3f}-{max(cpus):.3f}) | |")
    ratios = [x[0] / y[0] for x, y in zip(b, a)]
    cpu_ratios = [x[1] / y[1] for x, y in zip(b, a)]
    print(f"| {name}: {b_label} / {a_label} | | | wall {statistics.median(ratios):.2f}x "
          f"({min(ratios):.2f}-{max(ratios):.2f}), CPU {statistics.median(cpu_ratios):.2f}x "
          f"({min(cpu_ratios):.2f}-{max(cpu_ratios):.2f}) |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--old", type=int, default=1000, help="earlier runs per run name and stage")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        config = write_tiny_full_config(tmp)
        changed = tmp / "changed.yaml"
        changed.write_text(config.read_text().replace("image:\n", "image:\n  learning_rate: 0.0123\n", 1))
        env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
        env.update(TFPIPE_DATA_MIRROR=str(tmp / "mirror"), PYTHONPATH=str(ROOT / "bench"))
        small, large = {**env, "TFPIPE_WORKSPACE": str(tmp / "ws")}, {**env, "TFPIPE_WORKSPACE": str(tmp / "ws-old")}
        luigi = [sys.executable, "-m", "luigi", "--local-scheduler", "--module"]
        full_run = [*luigi, "pipelines", "FullRun", "--config", str(config)]
        plain = [*luigi, "plain_luigi_pipeline", "PlainRun", "--root", str(tmp / "plain")]
        explain = [sys.executable, "-m", "pipelines", "explain", "FullRun", "--config", str(changed)]
        timed(full_run, small, ROOT)  # complete everything once
        timed(plain, small, ROOT)
        shutil.copytree(tmp / "ws", tmp / "ws-old", symlinks=True)
        added = add_old_runs(tmp / "ws-old", args.old)
        pairs = {
            "no-op": ((plain, small), (full_run, small)),
            "no-op, old folders": ((full_run, small), (full_run, large)),
            "explain, one change": ((explain, small), (explain, large)),
        }
        labels = {"no-op": ("plain Luigi", "tfpipe FullRun"),
                  "no-op, old folders": ("tfpipe FullRun", f"with {args.old} old runs per name"),
                  "explain, one change": ("explain FullRun", f"with {args.old} old runs per name")}
        results: dict[str, tuple[list, list]] = {name: ([], []) for name in pairs}
        for a, b in pairs.values():
            timed(*a, ROOT), timed(*b, ROOT)  # warm the page cache and bytecode
        for _ in range(args.rounds):
            for name, (a, b) in pairs.items():
                results[name][0].append(timed(*a, ROOT))
                results[name][1].append(timed(*b, ROOT))
    print(f"# machine: {machine()}")
    print(f"# {args.rounds} rounds, A and B alternating; {added} old run folders in the larger workspace; "
          f"load average at the end {os.getloadavg()[0]:.2f}")
    print("| command | wall s: median (min-max) | CPU s: median (min-max) | ratio per round: median (min-max) |")
    print("|---|---|---|---|")
    for name, (a, b) in results.items():
        summarise(name, *labels[name], a, b)


if __name__ == "__main__":
    main()
