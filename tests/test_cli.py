"""`tfpipe` / `python -m pipelines`: program names, sub-commands, the report path at the end."""
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, luigi_env

COMMANDS = ("run", "explain", "plugins", "prune", "scheduler", "scheduled", "defaults")


def test_python_dash_m_help_names_itself_and_lists_the_commands():
    done = subprocess.run([sys.executable, "-m", "pipelines", "--help"], cwd=ROOT,
                          capture_output=True, text=True, check=True)
    assert done.stdout.startswith("usage: python -m pipelines ")
    assert all(command in done.stdout for command in COMMANDS)


def test_console_script_help_reads_tfpipe():
    code = "import sys; sys.argv = ['/usr/bin/tfpipe', 'explain', '--help']\n" \
           "from pipelines.__main__ import main; main()"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0 and done.stdout.startswith("usage: tfpipe explain "), done.stdout


@pytest.mark.slow
def test_run_ends_with_the_path_of_the_report(workspace):
    done = subprocess.run([sys.executable, "-m", "pipelines", "run", "LinearRegression", "--steps",
                           "200", "--record-every", "100", "--local-scheduler"], cwd=ROOT,
                          env=luigi_env(workspace, None), capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("report: ") and last.endswith("report.html")
    report = Path(last.removeprefix("report: "))
    assert report.is_absolute() and report.is_file()


def test_plugins_piped_into_head_ends_without_a_broken_pipe():
    import subprocess
    import sys

    done = subprocess.run(f"{sys.executable} -m pipelines plugins | head -1", shell=True, capture_output=True,
                          text=True, timeout=60)
    assert done.stdout.startswith("datasets (tfpipe.datasets):")
    assert "BrokenPipeError" not in done.stderr and "Traceback" not in done.stderr
