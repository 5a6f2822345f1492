"""Build Luigi's command-line parser once per task registry, not nine times.

Luigi's ``CmdlineParser`` builds a fresh argparse parser with one option per
parameter of every registered task (about 360 here, 3,000 ``add_argument``
calls a build) three times per instance, and a command line creates three
instances (two in ``retcodes``, one in ``interface``). That was about a third
of a no-op rerun. The parser depends only on the registered tasks, the root
task and ``--help-all``, so it is kept per those and reused; argparse parsers
are not changed by parsing.
"""
from __future__ import annotations

from typing import Any

from luigi.cmdline_parser import CmdlineParser
from luigi.task_register import Register

_parsers: dict[tuple, Any] = {}
_luigi_build: Any = None  # Luigi's own CmdlineParser._build_parser


def build(root_task: str | None, help_all: bool) -> Any:
    """One uncached build (a test counts the calls)."""
    return _luigi_build(root_task, help_all)


def _build_parser(root_task=None, help_all=False):
    # A task class defined later changes the registry: its id and length are in the key.
    key = (id(Register._reg), len(Register._reg), root_task, help_all)
    if key not in _parsers:
        _parsers[key] = build(root_task, help_all)
    return _parsers[key]


def install() -> None:
    global _luigi_build
    current = CmdlineParser.__dict__["_build_parser"].__func__
    if current is not _build_parser:
        _luigi_build = current
        CmdlineParser._build_parser = staticmethod(_build_parser)
