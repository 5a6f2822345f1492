"""A full disk, for real: a tiny tmpfs mounted by the test (root only; skipped otherwise).

Every write that fails for lack of space says "no space left on device" and names the file,
and leaves nothing at a name that could pass as complete.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from plugins.datasets.api import RemoteFile
from plugins.errors import TfpipeError
from tasks import atomic
from tasks.download import fetch
from tests.conftest import make_corpus, make_image_set, run_luigi, tiny_args, write_idx_folder
from tests.test_download import Server

FULL = "no space left on device: could not write "


def _mount(folder: Path, size: str) -> str | None:
    """Mount a tmpfs of `size` on `folder`; the reason it cannot be done, or None."""
    if os.geteuid() != 0:
        return "mounting a small tmpfs needs root"
    folder.mkdir(parents=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(folder)],
                          capture_output=True, text=True, check=False)
    return None if done.returncode == 0 else f"cannot mount a tmpfs here: {done.stderr.strip()}"


@pytest.fixture
def small_disk(tmp_path):
    """A function mounting a tmpfs of the size given; every mount is undone after the test."""
    mounted: list[Path] = []

    def make(size: str, name: str = "disk") -> Path:
        folder = tmp_path / name
        reason = _mount(folder, size)
        if reason:
            pytest.skip(reason)
        mounted.append(folder)
        return folder

    yield make
    for folder in mounted:
        if subprocess.run(["umount", str(folder)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(disk: Path, leave: int = 0) -> None:
    """Fill `disk` up to `leave` bytes free."""
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    with open(disk / "ballast", "wb") as handle:
        handle.write(b"\0" * max(free - leave, 0))


def left_behind(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())


def test_atomic_writes_on_a_full_disk_name_the_file_and_keep_the_old_one(small_disk):
    disk = small_disk("64k")
    report = disk / "report.html"
    atomic.write_text(report, "old")
    fill(disk)
    with pytest.raises(TfpipeError) as error:
        atomic.write_bytes(report, b"x" * 100_000)
    assert str(error.value).startswith(f"{FULL}{report}; free some space")
    assert isinstance(error.value, OSError)  # code that tolerates a failed write still does
    assert report.read_text() == "old" and left_behind(disk) == ["ballast", "report.html"]

    ids = disk / "train_ids.npy"
    with pytest.raises(TfpipeError, match=f"^{FULL}{ids};") as error:
        atomic.save_npy(ids, np.arange(100_000, dtype=np.uint16))
    assert "requested and" not in str(error.value)  # numpy's own words, without a path
    assert left_behind(disk) == ["ballast", "report.html"]


def test_a_download_onto_a_full_disk_is_not_retried_and_leaves_no_part(small_disk):
    disk = small_disk("64k")
    payload = os.urandom(200_000)
    server = Server()
    try:
        server.routes["/data.gz"] = [(200, payload)]
        remote = RemoteFile("data.gz", (server.url + "/data.gz",), hashlib.sha256(payload).hexdigest(),
                            len(payload))
        with pytest.raises(TfpipeError, match=f"^{FULL}{disk / 'data.gz'};"):
            fetch(remote, disk / "data.gz", attempts=3, backoff_s=0)
    finally:
        server.httpd.shutdown()
    assert server.hits["/data.gz"] == 1  # a full disk does not get better by asking again
    assert left_behind(disk) == []


def test_text_preprocessing_on_a_full_disk_says_so_and_names_the_file(small_disk, tmp_path):
    workspace = small_disk("256k") / "workspace"
    corpus = make_corpus(tmp_path / "texts" / "long.txt", chars=300_000)  # 600 kB of uint16 ids
    run = run_luigi(["TextRun", "--corpus", str(corpus), "--steps", "1"], workspace)
    assert run.returncode == 30, run
    preprocess = next((workspace / "preprocess").glob("long-*"))
    assert f"{FULL}{preprocess / 'train_ids.npy'}; free some space" in run.output
    assert "requested and" not in run.output
    assert left_behind(preprocess) == ["attempts.jsonl"]  # no array, no temporary, no manifest


def test_image_preprocessing_on_a_full_disk_says_so_and_leaves_no_shard(small_disk, tmp_path):
    workspace = small_disk("1m") / "workspace"
    data = write_idx_folder(tmp_path / "data" / "big",  # 3000 records of 786 bytes: 2.4 MB
                            make_image_set(num_train=3000, num_test=100, size=28))
    run = run_luigi(["ImageRun", *tiny_args(data), "--model", "mlp"], workspace)
    assert run.returncode == 30, run
    preprocess = next((workspace / "preprocess").glob("arrays-big-*"))
    assert FULL + str(preprocess) in run.output and "; free some space" in run.output
    assert "[Errno 28]" not in run.output
    # No shard, finished or partial, and no meta.json or manifest: the space is free again.
    assert left_behind(preprocess) == ["attempts.jsonl", "request.json"]
