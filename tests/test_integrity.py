"""Trust what is on disk: a finished folder that no longer matches its manifest is never read.

One real FullRun on tiny data is built per module; each test tampers with its own copy.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from pipelines.verify import task_folders
from tasks import atomic
from tasks.content import RACY_NS, HashCache
from tasks.integrity import check
from tests.conftest import ROOT, luigi_env, run_luigi, write_tiny_full_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, Path]:
    """(config, workspace) of a completed tiny FullRun (image and text paths)."""
    root = tmp_path_factory.mktemp("finished")
    config = write_tiny_full_config(root)
    run = run_luigi(["FullRun", "--config", str(config)], root / "ws", root / "mirror")
    assert run.returncode == 0, run
    return config, root / "ws"


@pytest.fixture
def ws(finished, tmp_path) -> Path:
    """This test's own copy of the finished workspace (same folder names: the workspace is not
    part of any fingerprint)."""
    return Path(shutil.copytree(finished[1], tmp_path / "ws", symlinks=True))


def run(task: str, config: Path, ws: Path):
    return run_luigi([task, "--config", str(config)], ws)


def one(ws: Path, pattern: str) -> Path:
    (found,) = ws.glob(pattern)
    return found


def forget(ws: Path, *patterns: str) -> None:
    """Remove finished folders so the next run redoes them (and reads what is upstream)."""
    for pattern in patterns:
        for folder in ws.glob(pattern):
            if folder.is_dir():  # not the lock files beside the folders
                shutil.rmtree(folder)


def nothing_started(ws: Path, pattern: str) -> bool:
    """The refused task left no trace: no folder, so no attempt and no request to a stage process."""
    return not [path for path in ws.glob(pattern) if path.is_dir()]


def verify(ws: Path, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipelines", "verify", "--workspace", str(ws), *flags],
                          cwd=ROOT, env=luigi_env(ws, None), capture_output=True, text=True)


@pytest.mark.parametrize("path, data, task", [
    ("image", "preprocess/arrays-tiny-*/train-00000.bin", "ImageRun"),
    ("text", "preprocess/words-*/train_ids.npy", "TextRun"),
])
def test_preprocessed_data_replaced_with_zeros_is_refused_before_training(finished, ws, path, data, task):
    target = one(ws, data)
    if target.suffix == ".npy":
        np.save(target, np.zeros_like(np.load(target)))  # same shape, dtype and size
    else:
        target.write_bytes(bytes(target.stat().st_size))
    name = "arrays-tiny-mlp" if path == "image" else "words-lstm"
    forget(ws, f"train/{name}-*", f"evaluate/{name}-*", "generate/*", "runs/*")
    result = run(task, finished[0], ws)
    assert result.returncode != 0, result
    assert f"{target}: sha256 differs from the recorded" in result.output
    assert "python -m pipelines verify --fix" in result.output
    assert nothing_started(ws, f"train/{name}-*")


def test_a_replaced_saved_model_is_never_loaded(finished, ws, tmp_path):
    train = one(ws, "train/arrays-tiny-mlp-*")
    marker = tmp_path / "the-planted-op-ran"
    plant = textwrap.dedent(f"""
        import shutil, tensorflow as tf

        class Planted(tf.Module):
            @tf.function(input_signature=[tf.TensorSpec(None, tf.float32)])
            def serve(self, x):
                tf.io.write_file({str(marker)!r}, "ran")
                return tf.zeros([tf.shape(x)[0], 4])

        shutil.rmtree({str(train / "saved_model")!r})
        tf.saved_model.save(Planted(), {str(train / "saved_model")!r})
    """)
    subprocess.run([sys.executable, "-c", plant], check=True, capture_output=True)
    forget(ws, "evaluate/arrays-tiny-mlp-*", "runs/*")
    result = run("ImageRun", finished[0], ws)
    assert result.returncode != 0, result
    assert f"{train}/saved_model/" in result.output and "no longer matches its manifest" in result.output
    assert not marker.exists()
    assert nothing_started(ws, "evaluate/arrays-tiny-mlp-*")


def test_an_edited_manifest_number_is_refused(finished, ws):
    manifest = one(ws, "evaluate/arrays-tiny-mlp-*/manifest.json")
    value = json.loads(manifest.read_text())
    value["record"]["accuracy"] = 0.123456
    manifest.write_text(json.dumps(value, indent=2, sort_keys=True))
    forget(ws, "runs/*")
    result = run("ImageRun", finished[0], ws)
    assert result.returncode != 0, result
    assert f"{manifest}: edited or damaged (its seal does not match its content)" in result.output
    assert not list(ws.glob("runs/*/summary.md"))
    assert "0.123456" not in result.output


def test_verify_reports_every_damaged_folder_and_fix_quarantines_them(ws):
    train = one(ws, "train/arrays-tiny-mlp-*")
    (train / "saved_model" / "assets").mkdir(exist_ok=True)
    (train / "saved_model" / "assets" / "planted.txt").write_text("not written by tfpipe")
    history = one(ws, "train/words-lstm-*/history.json")
    history.write_text(history.read_text()[:-10])
    unfinished = one(ws, "generate/words-lstm-*")
    (unfinished / "manifest.json").unlink()
    older = one(ws, "download/words-*/manifest.json")
    value = json.loads(older.read_text())
    del value["files"], value["seal"]
    older.write_text(json.dumps(value))

    found = verify(ws)
    assert found.returncode == 1, found
    out = found.stdout
    assert f"DAMAGED     {train}\n" in out
    assert f"{train}/saved_model/assets/planted.txt: not in the manifest (unexpected file)" in out
    assert f"DAMAGED     {history.parent}\n" in out
    assert f"{history}: size " in out
    assert f"unfinished  {unfinished}  (no manifest" in out
    assert f"unchecked   {older.parent}  (no file list: written by an older tfpipe)" in out
    assert out.count("DAMAGED") == 2

    fixed = verify(ws, "--fix")
    assert fixed.returncode == 0, fixed
    for folder in (train, history.parent):
        assert not folder.exists()
        (moved,) = ws.glob(f".quarantine/*/train/{folder.name}")
        assert f"moved to {moved}" in fixed.stdout
    assert (moved.parent / train.name / "saved_model" / "assets" / "planted.txt").exists()  # kept
    assert unfinished.exists() and older.exists()
    assert verify(ws).returncode == 0


def test_the_hash_cache_spares_a_second_verification_but_not_a_touch_r_restore(ws):
    def newest_change() -> int:
        stats = [path.stat() for path in ws.rglob("*") if path.is_file()]
        return max(max(stat.st_mtime_ns, stat.st_ctime_ns) for stat in stats)

    while newest_change() >= time.time_ns() - RACY_NS:  # files changed within RACY_NS are rehashed
        time.sleep(0.2)
    cache_file = ws / ".cache" / "file-hashes.json"
    first = HashCache(cache_file)
    assert all(check(folder, first).state == "ok" for folder in task_folders(ws))
    second = HashCache(cache_file)  # a new process: what the first one saved
    assert all(check(folder, second).state == "ok" for folder in task_folders(ws))
    assert second.hashed == 0
    model = one(ws, "train/words-lstm-*/model.keras")
    assert str(model.resolve()) in json.loads(cache_file.read_text())

    # Same size, mtime restored as `touch -r` would: the ctime still tells.
    before = model.stat()
    data = bytearray(model.read_bytes())
    data[-1] ^= 0xFF
    model.write_bytes(bytes(data))
    os.utime(model, ns=(before.st_atime_ns, before.st_mtime_ns))
    third = HashCache(cache_file)
    found = check(model.parent, third)
    recorded = json.loads((model.parent / "manifest.json").read_text())["files"]["model.keras"]["sha256"]
    assert found.problems == [f"{model}: sha256 differs from the recorded {recorded[:16]}..."]
    assert third.hashed == 1


KILLED_SAVE = """
import os, signal, sys
from pathlib import Path
from tasks import atomic

def write(tmp):
    if sys.argv[2] == "folder":
        tmp.mkdir()
        tmp = tmp / "saved_model.pb"
    tmp.write_bytes(b"half a model")
    os.kill(os.getpid(), signal.SIGKILL)

(atomic.save_folder if sys.argv[2] == "folder" else atomic.save_file)(Path(sys.argv[1]), write)
"""


@pytest.mark.parametrize("name, kind", [("model.keras", "file"), ("saved_model", "folder")])
def test_a_killed_or_failed_model_save_leaves_no_partial_model(tmp_path, name, kind):
    target = tmp_path / name
    killed = subprocess.run([sys.executable, "-c", KILLED_SAVE, str(target), kind], cwd=ROOT)
    assert killed.returncode == -signal.SIGKILL
    assert not target.exists()

    def writer(content: bytes, error: OSError | None = None):
        def write(path: Path) -> None:
            if kind == "folder":
                path.mkdir()
                path = path / "saved_model.pb"
            path.write_bytes(content)
            if error:
                raise error
        return write

    save = atomic.save_folder if kind == "folder" else atomic.save_file
    save(target, writer(b"whole"))
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # the killed save's leftovers are gone

    with pytest.raises(atomic.DiskFull, match=f"no space left on device: could not write {target}"):
        save(target, writer(b"par", OSError(28, "No space left on device")))
    content = target / "saved_model.pb" if kind == "folder" else target
    assert content.read_bytes() == b"whole"  # the previous model, untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]
