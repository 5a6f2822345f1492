"""The central scheduler (luigid) as tfpipe starts it: loopback only, state and logs in one folder.

luigid has no authentication, so the default address is 127.0.0.1. To reach it from
elsewhere, put a reverse proxy with TLS and basic auth in front of it (README).
"""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from pipelines.luigi_defaults import luigid_environment

DEFAULT_ADDRESS = "127.0.0.1"
DEFAULT_PORT = 8082
STATE_FILE = "state.pickle"
LOG_FILE = "luigi-server.log"  # the name luigid gives its log under --logdir


def default_state_dir() -> Path:
    return Path(os.environ.get("TFPIPE_WORKSPACE", "workspace")) / "luigid"


def luigid_command(state_dir: Path, address: str = DEFAULT_ADDRESS, port: int = DEFAULT_PORT) -> list[str]:
    """The documented luigid command line: state file and log under `state_dir`."""
    luigid = shutil.which("luigid", path=os.pathsep.join([str(Path(sys.executable).parent),
                                                          os.environ.get("PATH", "")]))
    program = [luigid] if luigid else [sys.executable, "-c", "import luigi.cmdline; luigi.cmdline.luigid()"]
    return [*program, "--address", address, "--port", str(port),
            "--state-path", str(Path(state_dir) / STATE_FILE), "--logdir", str(state_dir)]


def start_scheduler(state_dir: Path, address: str = DEFAULT_ADDRESS, port: int = DEFAULT_PORT) -> None:
    """Replace this process with luigid (foreground, for a terminal or systemd)."""
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    command = luigid_command(state_dir, address, port)
    os.execve(command[0], command, luigid_environment(state_dir))
