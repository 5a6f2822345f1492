"""Luigi's command-line parser is built once per task registry (pipelines/parser_cache.py), and each
task class lists its parameters once (tasks/base.py)."""
import json
import subprocess
import sys

import luigi

from tasks.base import PipelineTask
from tests.conftest import ROOT

# Runs in a fresh process: the cache patches Luigi's class for the whole process.
_COUNT_BUILDS = """
import json
import luigi
from luigi.cmdline_parser import CmdlineParser
import pipelines  # installs the cache
from pipelines import parser_cache
builds = []
uncached = parser_cache.build
def counting(root_task, help_all):
    builds.append(root_task)
    return uncached(root_task, help_all)
parser_cache.build = counting
argv = ["--module", "pipelines", "ImageRun", "--learning-rate", "0.5", "--local-scheduler"]
for _ in range(3):  # as Luigi does: retcodes twice, interface once
    with CmdlineParser.global_instance(argv) as parser:
        task = parser.get_task_obj()
class LateTask(luigi.Task):  # registered after the first builds: its flags must exist
    speed = luigi.IntParameter(default=1)
with CmdlineParser.global_instance(["LateTask", "--speed", "7", "--local-scheduler"]) as parser:
    late = parser.get_task_obj()
print(json.dumps({"builds": builds, "learning_rate": task.learning_rate, "late_speed": late.speed}))
"""


def test_the_parser_is_built_once_per_root_task_and_rebuilt_for_a_new_task_class():
    done = subprocess.run([sys.executable, "-c", _COUNT_BUILDS], cwd=ROOT, capture_output=True, text=True,
                          check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    # Without the cache: 3 builds per command line, 9 for three; with it, one per distinct key.
    assert result["builds"] == [None, "ImageRun", None, "LateTask"]
    assert result["learning_rate"] == 0.5
    assert result["late_speed"] == 7


def test_a_task_class_lists_its_parameters_once_as_luigi_would(monkeypatch):
    luigi_listing = luigi.Task.get_params.__func__
    listed = []
    monkeypatch.setattr(luigi.Task, "get_params", classmethod(lambda cls: listed.append(cls) or luigi_listing(cls)))

    class ListedOnce(PipelineTask):
        speed = luigi.IntParameter(default=1)
        angle = luigi.FloatParameter(default=0.5)

    first = ListedOnce.get_params()
    first.append(("changed", None))  # a caller's list is its own
    assert ListedOnce.get_params() == ListedOnce.get_params() == luigi_listing(ListedOnce)
    assert [name for name, _ in ListedOnce.get_params()] == ["workspace", "speed", "angle"]
    assert listed == [ListedOnce]  # Luigi's dir() walk ran once for the three calls
