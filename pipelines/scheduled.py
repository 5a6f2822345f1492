"""Runs started by a timer: ScheduledRun (one per date) and ScheduledHourlyRun (one per hour)."""
from __future__ import annotations

import datetime
import logging
import time
from pathlib import Path
from typing import Any

import luigi
from luigi.task import flatten

from pipelines.params import from_settings
from pipelines.report import task_records
from pipelines.run_task import RunTask
from pipelines.runs import FullRun
from tasks import atomic

logger = logging.getLogger(__name__)


@from_settings("data.mirror")
class SlotRun(RunTask):
    """The whole pipeline (FullRun's upstream) for one date, started by a timer.

    Reads what FullRun reads; every fingerprinted result that did not change is
    reused, so a nightly run with no change trains nothing. Writes
    ``runs/scheduled-<slot>-<fingerprint>/``: summary.json/summary.md (the
    dated report) and stages.json (each task, its folder and whether this slot
    produced it or reused it).
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.scheduled_at = int(time.time())  # results finished before this were reused (1 s resolution)

    def slot(self) -> str:
        raise NotImplementedError

    def run_name(self) -> str:
        return f"scheduled-{self.slot()}"

    def significant_params(self) -> dict[str, Any]:
        return {"slot": self.slot()}  # one report per slot, even when nothing changed

    def full_run(self) -> FullRun:
        return FullRun(config=self.config, workspace=self.workspace, mirror=self.mirror)

    def requires(self) -> list[luigi.Task]:
        return flatten(self.full_run().requires())

    def summary(self) -> dict[str, Any]:
        result = self.full_run().summary()
        tasks = task_records(self, since=self.scheduled_at)
        result["slot"] = self.slot()
        result["tasks"] = tasks
        result["produced"] = [row["task_id"] for row in tasks if row["status"] == "ran"]
        result["reused"] = [row["task_id"] for row in tasks if row["status"] == "reused"]
        return result

    def write_extras(self, folder: Path, summary: dict[str, Any]) -> dict[str, Any]:
        atomic.write_json(folder / "stages.json", summary["tasks"])
        logger.info("%s: produced %d task(s), reused %d", self.task_id, len(summary["produced"]),
                    len(summary["reused"]))
        return {"slot": self.slot()}


class ScheduledRun(SlotRun):
    """SlotRun for one date (``--date 2024-05-01``): the nightly run."""

    date = luigi.DateParameter(default=datetime.date.today(), description="the slot (default: today)")

    def slot(self) -> str:
        return self.date.isoformat()


class ScheduledHourlyRun(SlotRun):
    """SlotRun for one hour (``--date-hour 2024-05-01T03``) for timers firing more than daily."""

    date_hour = luigi.DateHourParameter(default=datetime.datetime.now().replace(minute=0, second=0, microsecond=0),
                                        description="the slot (default: this hour)")

    def slot(self) -> str:
        return self.date_hour.strftime("%Y-%m-%dT%H")


