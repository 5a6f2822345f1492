"""The Luigi process stays light: importing the task module loads neither TensorFlow, numpy nor PyYAML."""
import json
import subprocess
import sys

from tests.conftest import ROOT


def test_import_pipelines_loads_neither_tensorflow_nor_numpy_nor_yaml():
    # PyYAML loads only when a config file is parsed (not on a rerun: pipelines/config.py caches it).
    code = "import json, sys, pipelines; print(json.dumps(sorted({'tensorflow', 'numpy', 'yaml'} & set(sys.modules))))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
