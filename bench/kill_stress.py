"""kill -9 image and text runs at random moments; nothing partial may ever pass as complete.

nice python bench/kill_stress.py [--runs 50] [--seed 0] [--jobs 1] [--keep DIR]   (N=50: about 55 min on 2 busy cores)

In a temporary workspace, on tiny data it makes itself (the `arrays` dataset read in
place, a small text file), it:

1. times one image and one text run to completion (in a scratch workspace) to size the
   window in which kills land;
2. starts --runs runs, alternately ImageRun and TextRun (each with its own seed, and one of
   three preprocessing variants, so every stage gets killed), and `kill -9`s each whole
   process group at a moment drawn uniformly from that window (seeded);
3. checks every task folder that has a manifest: its files match the manifest
   (tasks/integrity.py), and, in a TensorFlow process of this script's own, its outputs are
   whole: JSON parses, arrays load, shards have their sizes, PNGs end with IEND, models load
   and predict, training reached its steps. A folder with a manifest that fails any of this
   is a partial output marked complete;
4. reruns every run to completion and checks each ends complete (exit 0), then checks
   every folder again.

Prints the machine, N and the counts; exits 1 if any partial output was marked complete or
any rerun did not end complete.
"""
from __future__ import annotations

import argparse
import collections
import concurrent.futures
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import machine  # bench/machine.py: the script's own folder is on sys.path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

STEPS, CHECKPOINT_EVERY = 20, 5  # several checkpoints per run: kills land during their saves too
IMAGE_VARIANTS = ["0.125", "0.1", "0.15"]  # --validation-fraction
TEXT_VARIANTS = ["0.1", "0.15", "0.2"]  # --holdout


def make_config(folder: Path) -> Path:
    from tests.conftest import make_corpus, make_image_set, write_idx_folder

    data = write_idx_folder(folder / "data" / "tiny", make_image_set())
    corpus = make_corpus(folder / "texts" / "words.txt")
    config = folder / "stress.yaml"
    config.write_text(
        f"image:\n  dataset: arrays\n  model: mlp\n  steps: {STEPS}\n  batch_size: 20\n"
        f"  checkpoint_every: {CHECKPOINT_EVERY}\n"
        f"text:\n  corpus: {json.dumps(str(corpus))}\n  model: lstm\n  lowercase: false\n  window: 20\n"
        f"  steps: {STEPS}\n  batch_size: 8\n  checkpoint_every: {CHECKPOINT_EVERY}\n  temperatures: [0.5]\n"
        "  length: 30\n  seed_length: 10\n"
        f"datasets:\n  arrays:\n    path: {json.dumps(str(data))}\n"
        "models:\n  lstm:\n    units: 16\n    embedding_dim: 8\n")
    return config


def command(index: int, config: Path) -> list[str]:
    """Run `index`: image for even, text for odd; its own seed, one of three preprocessings."""
    variant = (index // 2) % 3
    if index % 2 == 0:
        task = ["ImageRun", "--validation-fraction", IMAGE_VARIANTS[variant]]
    else:
        task = ["TextRun", "--holdout", TEXT_VARIANTS[variant]]
    return [sys.executable, "-m", "pipelines", "run", *task, "--seed", str(index // 2), "--config", str(config),
            "--local-scheduler"]


def environment(workspace: Path) -> dict[str, str]:
    return {**os.environ, "TFPIPE_WORKSPACE": str(workspace), "TFPIPE_DATA_MIRROR": str(workspace.parent / "mirror")}


def run(cmd: list[str], workspace: Path, log: Path, kill_after: float | None = None) -> tuple[int, float, bool]:
    """(exit code, seconds, killed): kill_after seconds after the start, SIGKILL its process group."""
    started = time.perf_counter()
    with open(log, "ab") as out:
        process = subprocess.Popen(cmd, cwd=ROOT, env=environment(workspace), stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        try:
            code = process.wait(timeout=kill_after)
            return code, time.perf_counter() - started, False
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            return -signal.SIGKILL, time.perf_counter() - started, True


_STAGE = re.compile(r"starting (tasks\.\w+\.\w+) for")


def in_flight(log: Path) -> str:
    """The stage process the run was in when killed (from its log), or 'luigi' before any."""
    found = _STAGE.findall(log.read_text(errors="replace"))
    return found[-1].split(".", 1)[1] if found else "luigi (no stage process yet)"


# ----- checks ------------------------------------------------------------------------------

def check_files(workspace: Path) -> tuple[dict[str, int], list[str], list[Path]]:
    """Every task folder against its manifest: (states, problems, finished folders)."""
    from pipelines.verify import task_folders
    from tasks.content import HashCache
    from tasks.integrity import check

    cache = HashCache(workspace / ".cache" / "file-hashes.json")
    states: dict[str, int] = collections.Counter()
    problems, finished = [], []
    for folder in task_folders(workspace):
        found = check(folder, cache)
        states[f"{folder.parent.name} {found.state}"] += 1
        problems += found.problems
        if found.state != "unfinished":
            finished.append(folder)
    return dict(sorted(states.items())), problems, finished


def check_outputs(folders: list[Path]) -> list[str]:
    """In a TensorFlow process of our own: the outputs of each finished folder are whole."""
    listing = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
    json.dump([str(folder) for folder in folders], listing)
    listing.close()
    done = subprocess.run([sys.executable, __file__, "--deep-check", listing.name], cwd=ROOT,
                          capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    os.unlink(listing.name)
    if done.returncode != 0:
        return [f"deep check crashed: {done.stderr[-2000:]}"]
    return json.loads(done.stdout.strip().splitlines()[-1])


def deep_check(listing: Path) -> None:
    """(--deep-check) print a JSON list of problems of the folders listed in `listing`."""
    problems = []
    for folder in map(Path, json.loads(listing.read_text())):
        try:
            _whole(folder)
        except Exception as exc:  # noqa: BLE001 - any failure to read an output is the finding
            problems.append(f"{folder}: {type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}")
    print(json.dumps(problems))


def _whole(folder: Path) -> None:
    import numpy as np

    manifest = json.loads((folder / "manifest.json").read_text())
    for name in manifest["files"]:
        path = folder / name
        if path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".npy":
            np.load(path, allow_pickle=False)
        elif path.suffix == ".png":
            data = path.read_bytes()
            assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[-8:-4] == b"IEND", f"{name}: truncated PNG"
        elif path.suffix == ".html":
            assert path.read_text().rstrip().endswith("</html>"), f"{name}: truncated HTML"
    stage, record = folder.parent.name, manifest["record"]
    if stage == "preprocess" and (folder / "meta.json").exists() and "shards" in record:
        from tasks.image.shards import verify

        verify(folder, json.loads((folder / "meta.json").read_text()))
    if stage == "train":
        assert record["final_step"] == manifest["run_params"]["steps"], f"trained {record['final_step']} steps"
        _load_models(folder, manifest)


def _load_models(folder: Path, manifest: dict) -> None:
    import keras
    import numpy as np
    import tensorflow as tf

    request = json.loads((folder / "request.json").read_text())
    if "saved_model" in record_formats(manifest):
        shape = json.loads((Path(request["data_dir"]) / "meta.json").read_text())["input_shape"]
        exported = tf.saved_model.load(str(folder / "saved_model"))
        assert exported.serve(tf.zeros([1, *shape])).shape[0] == 1
        model = keras.models.load_model(str(folder / "model.keras"), compile=False)
        assert model(np.zeros([1, *shape], np.float32)).shape[0] == 1
    else:
        from tasks.text.scoring import load_char_model

        vocab = json.loads((Path(request["data_dir"]) / "vocab.json").read_text())
        model = load_char_model(folder, vocab, str(folder))
        assert model(np.zeros([1, 10], np.int32)).shape[-1] == len(vocab)


def record_formats(manifest: dict) -> list[str]:
    return manifest["record"].get("exported", [])


# ----- the run -------------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    parser.add_argument("--jobs", type=int, default=1, help="runs at the same time")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it (default: a temporary one)")
    parser.add_argument("--deep-check", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.deep_check:
        deep_check(args.deep_check)
        return 0
    root = args.keep or Path(tempfile.mkdtemp(prefix="tfpipe-kill-stress-"))
    root.mkdir(parents=True, exist_ok=True)
    config, workspace, logs = make_config(root), root / "ws", root / "logs"
    logs.mkdir(exist_ok=True)
    print(f"# {machine()}\n# N={args.runs}, seed {args.seed}, {args.jobs} at a time, in {root}", flush=True)

    window = {}
    for path, index in (("image", 0), ("text", 1)):
        code, seconds, _ = run(command(index, config), root / "scratch-ws", logs / f"calibrate-{path}.log")
        if code != 0:
            print(f"calibration {path} run failed (exit {code}); see {logs}")
            return 1
        window[path] = seconds
    print(f"# uninterrupted run: image {window['image']:.1f} s, text {window['text']:.1f} s; "
          "each run is killed at a moment uniform in [0, that]", flush=True)

    rng = random.Random(args.seed)
    plan = [(i, rng.uniform(0, window["image" if i % 2 == 0 else "text"])) for i in range(args.runs)]
    killed_in: dict[str, int] = collections.Counter()
    finished_first = 0

    def kill_one(item: tuple[int, float]) -> tuple[bool, str]:
        index, delay = item
        log = logs / f"run-{index:03d}.log"
        _, _, killed = run(command(index, config), workspace, log, kill_after=delay)
        return killed, in_flight(log) if killed else ""

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        for killed, stage in pool.map(kill_one, plan):
            if killed:
                killed_in[stage] += 1
            else:
                finished_first += 1
    print(f"# kill phase: {time.perf_counter() - started:.0f} s; killed {sum(killed_in.values())}, "
          f"finished before their kill {finished_first}; killed while running: {dict(killed_in)}", flush=True)

    states, problems, finished = check_files(workspace)
    problems += check_outputs(finished)
    partial_after_kills, finished_after_kills = len(problems), len(finished)
    print(f"# after the kills: {states}", flush=True)
    for problem in problems:
        print(f"  PARTIAL MARKED COMPLETE: {problem}")

    started = time.perf_counter()
    rerun_complete = 0
    for index in range(args.runs):
        code, _, _ = run(command(index, config), workspace, logs / f"rerun-{index:03d}.log")
        rerun_complete += code == 0
        if code != 0:
            print(f"  rerun {index} ended with exit {code}: see {logs / f'rerun-{index:03d}.log'}")
    states, problems, finished = check_files(workspace)
    problems += check_outputs(finished)
    unfinished = sum(count for key, count in states.items() if key.endswith(" unfinished"))
    print(f"# rerun phase: {time.perf_counter() - started:.0f} s; after the reruns: {states}", flush=True)
    for problem in problems:
        print(f"  PARTIAL MARKED COMPLETE: {problem}")

    print("| figure | value |\n|---|---|")
    print(f"| runs started and killed at random (N) | {args.runs} ({sum(killed_in.values())} killed, "
          f"{finished_first} finished before their kill) |")
    print(f"| task folders with a manifest, checked | {finished_after_kills} after the kills, {len(finished)} "
          "after the reruns |")
    print(f"| partial outputs marked complete, after the kills | {partial_after_kills} |")
    print(f"| reruns ending complete | {rerun_complete} of {args.runs} |")
    print(f"| partial outputs marked complete, after the reruns | {len(problems)} |")
    print(f"| unfinished folders left after the reruns | {unfinished} |")
    return 0 if partial_after_kills == 0 and not problems and rerun_complete == args.runs else 1


if __name__ == "__main__":
    sys.exit(main())
