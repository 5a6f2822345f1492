"""Console logging for tfpipe's own loggers when run under the `luigi` command."""
from __future__ import annotations

import logging

OWN_LOGGERS = ("pipelines", "tasks", "plugins")


def configure(level: int = logging.INFO) -> None:
    """Luigi only configures its own logger; give ours a handler unless the user did."""
    if logging.getLogger().handlers:
        return
    for name in OWN_LOGGERS:
        logger = logging.getLogger(name)
        if not logger.handlers:
            handler = logging.StreamHandler()
            handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
            logger.addHandler(handler)
            logger.setLevel(level)
            logger.propagate = False
