"""The Luigi module users name: ``luigi --module pipelines FullRun``.

Importing it must stay cheap and TensorFlow-free: it only defines tasks.
"""
from pipelines import luigi_defaults as _luigi_defaults
from pipelines import parser_cache as _parser_cache
from pipelines.basics_runs import GraphSpeedup, LinearRegression
from pipelines.logs import configure as _configure_logging
from pipelines.runs import FullRun, ImageRun, TextRun
from pipelines.scheduled import ScheduledHourlyRun, ScheduledRun
from pipelines.user_errors import install as _report_user_errors

_luigi_defaults.apply()  # before Luigi reads [retcode]: a failure exits non-zero from any folder
_parser_cache.install()  # Luigi would rebuild its 360-option parser eight more times
_configure_logging()
_report_user_errors()  # a TfpipeError: no traceback, no retry, one line at the end

__all__ = ["FullRun", "GraphSpeedup", "ImageRun", "LinearRegression", "ScheduledHourlyRun", "ScheduledRun",
           "TextRun"]
