"""The Luigi process stays light: importing the task module loads neither TensorFlow nor numpy."""
import json
import subprocess
import sys

from tests.conftest import ROOT


def test_import_pipelines_loads_neither_tensorflow_nor_numpy():
    code = "import json, sys, pipelines; print(json.dumps(sorted({'tensorflow', 'numpy'} & set(sys.modules))))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
