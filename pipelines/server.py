"""The central scheduler (luigid) as tfpipe starts it: loopback only, state and logs in one folder.

luigid has no authentication, so the default address is 127.0.0.1. To reach it from
elsewhere, put a reverse proxy with TLS and basic auth in front of it (README).
"""
from __future__ import annotations

import os
import shutil
import socket
import sys
import urllib.parse
from pathlib import Path

import luigi.interface

from pipelines.luigi_defaults import luigid_environment
from plugins.errors import TfpipeError

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


def check_reachable(timeout_s: float = 3.0) -> None:
    """Without --local-scheduler, fail at once when nothing listens where luigid should be.

    Luigi's RPC client retries each call ([core] rpc-retry-attempts 3, rpc-retry-wait 30 s)
    so that a running worker outlives a restart of luigid; before the first call that makes
    a missing luigid an RPCError after a minute. One TCP connection says it in seconds.
    """
    params = luigi.interface.core()
    if params.local_scheduler:
        return
    url = params.scheduler_url or f"http://{params.scheduler_host}:{params.scheduler_port}/"
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return  # a Unix socket (http+unix://): left to Luigi
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname, port), timeout=timeout_s).close()
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise TfpipeError(
            f"no Luigi scheduler answers at {url.rstrip('/')} ({reason}): start one with `python -m "
            "pipelines scheduler` (README, Running on a server), or run without one: add "
            "--local-scheduler") from None
