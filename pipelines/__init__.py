"""The Luigi module users name: ``luigi --module pipelines FullRun``.

Importing it must stay cheap and TensorFlow-free: it only defines tasks.
"""
from pipelines import luigi_defaults as _luigi_defaults
from pipelines.basics_runs import GraphSpeedup, LinearRegression
from pipelines.logs import configure as _configure_logging
from pipelines.runs import FullRun, ImageRun, TextRun
from pipelines.scheduled import ScheduledHourlyRun, ScheduledRun

_luigi_defaults.apply()  # before Luigi reads [retcode]: a failure exits non-zero from any folder
_configure_logging()

__all__ = ["FullRun", "GraphSpeedup", "ImageRun", "LinearRegression", "ScheduledHourlyRun", "ScheduledRun",
           "TextRun"]
