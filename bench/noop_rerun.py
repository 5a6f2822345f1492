"""Wall time of a rerun with nothing to do: tfpipe FullRun vs plain Luigi, side by side.

python bench/noop_rerun.py [--repeats 7]

Builds tiny data and a config in a temporary folder, runs FullRun once to
complete it, then times `luigi --module pipelines FullRun` (no-op) and
`python -m pipelines explain FullRun` against `luigi --module
plain_luigi_pipeline PlainRun` (TensorFlow imported at module level), each
the median of --repeats runs.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import write_tiny_full_config  # noqa: E402


def timed(command: list[str], env: dict, repeats: int, cwd: Path = ROOT) -> list[float]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
        times.append(time.perf_counter() - started)
        if done.returncode:
            sys.exit(f"{' '.join(command)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        config = write_tiny_full_config(tmp)
        env = {**os.environ, "TFPIPE_WORKSPACE": str(tmp / "ws"), "TFPIPE_DATA_MIRROR": str(tmp / "mirror"),
               "PYTHONPATH": str(ROOT / "bench")}
        luigi = [sys.executable, "-m", "luigi", "--local-scheduler", "--module"]
        full_run = [*luigi, "pipelines", "FullRun", "--config", str(config)]
        timed(full_run, env, 1)  # complete everything once
        plain = [*luigi, "plain_luigi_pipeline", "PlainRun", "--root", str(tmp / "plain")]
        timed(plain, env, 1)
        rows = {
            "tfpipe FullRun, nothing to do": timed(full_run, env, args.repeats),
            "tfpipe explain FullRun": timed([sys.executable, "-m", "pipelines", "explain", "FullRun", "--config",
                                             str(config)], env, args.repeats),
            "plain Luigi + TF at module level, nothing to do": timed(plain, env, args.repeats),
        }
    print(f"# median of {args.repeats} runs, {os.cpu_count()} CPUs")
    print("| command | median s | min s | max s |")
    print("|---|---|---|---|")
    for name, times in rows.items():
        print(f"| {name} | {statistics.median(times):.3f} | {min(times):.3f} | {max(times):.3f} |")


if __name__ == "__main__":
    main()
