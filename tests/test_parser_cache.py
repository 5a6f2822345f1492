"""Luigi's command-line parser is built once per task registry (pipelines/parser_cache.py)."""
import json
import subprocess
import sys

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
