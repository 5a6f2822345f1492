import fcntl
import json
import subprocess
import sys

from pipelines.prune import parse_date, prune
from tests.conftest import ROOT


def result(root, stage, name, fingerprint, finished=None, size=1000):
    folder = root / stage / f"{name}-{fingerprint}"
    folder.mkdir(parents=True)
    (folder / "blob.bin").write_bytes(b"x" * size)
    if finished:
        (folder / "manifest.json").write_text(json.dumps({"finished": finished}))
    return folder


def test_keep_newest_per_stage_and_name(tmp_path):
    old = result(tmp_path, "train", "fashion_mnist-cnn", "a" * 16, "2026-01-01T00:00:00+00:00")
    new = result(tmp_path, "train", "fashion_mnist-cnn", "b" * 16, "2026-02-01T00:00:00+00:00")
    other = result(tmp_path, "train", "fashion_mnist-mlp", "c" * 16, "2025-01-01T00:00:00+00:00")
    unfinished = result(tmp_path, "train", "fashion_mnist-cnn", "d" * 16)

    removed, total = prune(tmp_path, keep=1, older_than=None, include_unfinished=False, dry_run=True)
    assert [r.folder for r, _ in removed] == [old] and 1000 < total < 1200 and old.exists()

    removed, total = prune(tmp_path, keep=1, older_than=None, include_unfinished=False, dry_run=False)
    assert not old.exists() and new.exists() and other.exists() and unfinished.exists()


def test_older_than_and_unfinished(tmp_path):
    old = result(tmp_path, "evaluate", "x", "a" * 16, "2026-01-01T00:00:00+00:00")
    recent = result(tmp_path, "evaluate", "x", "b" * 16, "2026-06-01T00:00:00+00:00")
    unfinished = result(tmp_path, "train", "x", "c" * 16)
    prune(tmp_path, keep=None, older_than=parse_date("2026-03-01"), include_unfinished=True, dry_run=False)
    assert not old.exists() and recent.exists() and not unfinished.exists()


def test_a_folder_being_written_is_never_removed(tmp_path):
    busy = result(tmp_path, "train", "x", "a" * 16)
    with open(tmp_path / "train" / f".{busy.name}.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        removed, _ = prune(tmp_path, keep=0, older_than=None, include_unfinished=True, dry_run=False)
    assert removed == [] and busy.exists()


def test_command_says_what_it_freed(tmp_path):
    result(tmp_path, "train", "x", "a" * 16, "2026-01-01T00:00:00+00:00", size=2_500_000)
    result(tmp_path, "train", "x", "b" * 16, "2026-02-01T00:00:00+00:00")
    out = subprocess.run([sys.executable, "-m", "pipelines", "prune", "--keep", "1", "--workspace", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert "removed" in out and "freed 2.5 MB in 1 folders" in out


def test_command_without_a_rule_is_an_error(tmp_path):
    done = subprocess.run([sys.executable, "-m", "pipelines", "prune", "--workspace", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 2 and "say what to remove" in done.stderr
