"""Test task: runs until a release file appears, so a test can hold it RUNNING under luigid
for as long as it needs (tests/test_server.py)."""
from __future__ import annotations

import time
from pathlib import Path

import luigi


class GateTask(luigi.Task):
    folder = luigi.Parameter()

    def output(self):
        return luigi.LocalTarget(str(Path(self.folder) / "done"))

    def run(self):
        while not (Path(self.folder) / "release").exists():
            time.sleep(0.1)
        with self.output().open("w") as out:
            out.write("done\n")
