"""No network and no mirror copy, through the real `luigi` command line: every missing file
gets one message naming its URL and the exact path to put it at. Downloads go to a port on
127.0.0.1 where nothing listens."""
from __future__ import annotations

import json
import re
import socket

import pytest

from tests.conftest import run_luigi
from tests.plugin_fixtures import install_fake_distribution
from tests.test_image_pipeline import MINE

pytestmark = pytest.mark.slow

# A third-party image dataset of two files, downloaded from URLS (formatted in by the test).
NETDIGITS = '''
"""Digits downloaded from the URLs in REMOTE."""
from pathlib import Path

from plugins.datasets.api import RemoteFile

KIND = "image_classification"
DEFAULTS = {{}}
REMOTE = tuple(RemoteFile(name, ("{base}/" + name,), "0" * 64, 1000)
               for name in ("digits-train.npz", "digits-test.npz"))


def locate(folder, options):
    found = {{split: Path(folder) / f"digits-{{split}}.npz" for split in ("train", "test")}}
    return found if all(path.is_file() for path in found.values()) else None


def open_dataset(files, options):
    raise AssertionError("never reached without the files")
'''


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def messages(output: str, start: str) -> set[str]:
    """The distinct messages in `output` that begin with `start` (each to the end of its line)."""
    return {match.group(0) for match in re.finditer(re.escape(start) + ".*", output)}


def test_full_run_without_network_names_each_url_and_the_exact_mirror_path(workspace, tmp_path):
    base = f"http://127.0.0.1:{closed_port()}"
    site = install_fake_distribution(tmp_path / "site", "tfpipe-netdigits", "1.0",
                                     {"netdigits/__init__.py": "",
                                      "netdigits/plugin.py": NETDIGITS.format(base=base)},
                                     {"tfpipe.datasets": {"netdigits": "netdigits.plugin"}})
    config = tmp_path / "offline.yaml"
    config.write_text(f"image:\n  dataset: netdigits\n  model: mlp\n  steps: 5\n"
                      f"text:\n  corpus: {json.dumps(base + '/books/mine.txt')}\n  steps: 5\n")
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    run = run_luigi(["FullRun", "--config", str(config)], workspace, mirror, extra_path=[site])
    assert run.returncode == 30, run

    image = messages(run.output, "could not download digits-train.npz")
    assert image == {f"could not download digits-train.npz: {base}/digits-train.npz: [Errno 111] "
                     "Connection refused (3 attempts). Without internet, put the file at "
                     f"{mirror}/netdigits/digits-train.npz, and beside it digits-test.npz"}, run
    text = messages(run.output, "could not download mine.txt")
    assert text == {f"could not download mine.txt: {base}/books/mine.txt: [Errno 111] Connection "
                    f"refused (3 attempts). Without internet, put the file at "
                    f"{mirror}/text_file/mine.txt"}, run
    assert "<dataset>" not in run.output and "<mirror>" not in run.output


def test_a_dataset_with_nothing_to_download_is_named_once_with_its_folder(workspace, tmp_path):
    site = install_fake_distribution(tmp_path / "site", "tfpipe-minedata", "2.0.1",
                                     {"minedata/__init__.py": "", "minedata/plugin.py": MINE},
                                     {"tfpipe.datasets": {"mine": "minedata.plugin"}})
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    run = run_luigi(["ImageRun", "--dataset", "mine", "--model", "mlp", "--steps", "5"],
                    workspace, mirror, extra_path=[site])
    assert run.returncode != 0, run
    expected = (f"dataset 'mine' has no local copy and nothing to download (looked in: "
                f"{mirror}/mine); put its files in {mirror}/mine/, or install the package that "
                "provides them")
    assert messages(run.output, "dataset 'mine' has no local copy") == {expected}, run
    # The data is missing; the settings checked before scheduling are not to blame.
    assert "image.validation_fraction" not in run.output and "ConfigError" not in run.output
    assert "<mirror>" not in run.output
