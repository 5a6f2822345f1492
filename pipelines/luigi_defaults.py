"""tfpipe's Luigi settings ship inside the package, so they hold wherever a run starts.

Luigi reads ``luigi.cfg`` only from the current folder (and /etc/luigi,
$LUIGI_CONFIG_PATH). Without the shipped ``[retcode]`` codes a failed run
started from any other folder would exit 0, and cron or CI would never notice.
`apply()` runs when ``luigi --module pipelines`` imports this package, before
Luigi reads the retcodes, the worker or the scheduler settings; every value the
user's own config sets wins.
"""
from __future__ import annotations

import configparser
import hashlib
import os
import tempfile
from pathlib import Path

import luigi.configuration

from pipelines.config import workspace_root

DEFAULTS_FILE = Path(__file__).with_name("luigi-defaults.cfg")


def shipped() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(DEFAULTS_FILE, encoding="utf-8")
    return parser


def _normal(key: str) -> str:
    return key.replace("-", "_")  # luigi accepts task-failed and task_failed alike


def apply() -> None:
    """Add each shipped value the user's Luigi configuration does not set."""
    config, defaults = luigi.configuration.get_config(), shipped()
    for section in defaults.sections():
        if not config.has_section(section):
            config.add_section(section)
        present = {_normal(key) for key in config.options(section)}
        for key, value in defaults.items(section, raw=True):
            if _normal(key) not in present:
                config.set(section, key, value)
    if "lock_pid_dir" not in {_normal(key) for key in config.options("core")}:
        config.set("core", "lock_pid_dir", lock_dir(workspace_root()))


def lock_dir(workspace: str) -> str:
    """The folder of Luigi's pid lock for runs against `workspace`.

    Luigi refuses to start a command line that is already running on this host ("already
    running", exit 10); it knows the command line only, and the workspace usually comes from
    $TFPIPE_WORKSPACE or the current folder. One lock folder per workspace: the same command
    against another workspace runs, against the same workspace it is still refused.
    (A folder in the temporary directory, not in the workspace: Luigi creates only the last
    folder of the path, and the workspace may not exist yet.)
    """
    key = hashlib.sha256(os.path.realpath(workspace).encode("utf-8")).hexdigest()[:16]
    return os.path.join(tempfile.gettempdir(), f"luigi-tfpipe-{key}")


def luigid_environment(state_dir: Path) -> dict[str, str]:
    """Environment for a luigid started by tfpipe (luigid never imports this package).

    Its config is written to ``state_dir/luigid.cfg``: the shipped settings, then
    ./luigi.cfg, then $LUIGI_CONFIG_PATH, each later one winning, as for a run.
    """
    layers = [DEFAULTS_FILE, Path("luigi.cfg")]
    layers += [Path(path) for path in os.environ.get("LUIGI_CONFIG_PATH", "").split(os.pathsep) if path]
    merged = configparser.ConfigParser(interpolation=None)
    merged.read([layer for layer in layers if layer.is_file()], encoding="utf-8")
    target = Path(state_dir) / "luigid.cfg"
    with open(target, "w", encoding="utf-8") as handle:
        merged.write(handle)
    return {**os.environ, "LUIGI_CONFIG_PATH": str(target)}
