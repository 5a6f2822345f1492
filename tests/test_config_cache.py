"""A parsed --config file is cached in the workspace: a rerun with the file unchanged imports no
PyYAML, and any edit (even one that keeps size and mtime) is parsed and checked again."""
import json
import os
import subprocess
import sys

from tests.conftest import ROOT

_RESOLVE = """
import json, sys
from pipelines import config
resolved = config.resolve(sys.argv[1])
print(json.dumps({"yaml": "yaml" in sys.modules, "steps": resolved.get("image", "steps"),
                  "where": resolved.where("image.steps")}))
"""


def resolve(path, workspace):
    done = subprocess.run([sys.executable, "-c", _RESOLVE, str(path)], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "TFPIPE_WORKSPACE": str(workspace)})
    if done.returncode:
        return done.stderr.strip().splitlines()[-1]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_an_unchanged_file_is_read_from_the_cache_without_pyyaml(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("image:\n  steps: 7\n")
    first = resolve(config, tmp_path / "ws")
    assert first == {"yaml": True, "steps": 7, "where": f"{config}:2"}
    assert resolve(config, tmp_path / "ws") == {**first, "yaml": False}


def test_an_edit_that_keeps_size_and_mtime_is_parsed_again(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("image:\n  steps: 7\n")
    assert resolve(config, tmp_path / "ws")["steps"] == 7
    stat = config.stat()
    config.write_text("image:\n  steps: 8\n")  # same size
    os.utime(config, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same mtime (ctime still moves)
    assert resolve(config, tmp_path / "ws") == {"yaml": True, "steps": 8, "where": f"{config}:2"}


def test_an_invalid_file_is_never_cached(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("image:\n  steps: -1\n")
    for _ in range(2):
        error = resolve(config, tmp_path / "ws")
        assert isinstance(error, str) and f"{config}:2" in error
