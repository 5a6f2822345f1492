"""Which checkpoints a training folder holds, read from the files themselves (no TensorFlow).

The ``checkpoint`` state file only names them; when it is lost or garbled the
``ckpt-N.index`` files still say what exists, so nothing restarts from zero.
"""
from __future__ import annotations

import re
from pathlib import Path

CHECKPOINTS = "checkpoints"
_INDEX = re.compile(r"^ckpt-(\d+)\.index$")


def checkpoint_steps(folder: Path) -> list[int]:
    """Steps of the checkpoints in `folder`/checkpoints that have both index and data, newest first."""
    directory = Path(folder) / CHECKPOINTS
    steps = []
    for path in directory.glob("ckpt-*.index") if directory.is_dir() else []:
        match = _INDEX.match(path.name)
        if match and list(directory.glob(f"ckpt-{match.group(1)}.data-*")):
            steps.append(int(match.group(1)))
    return sorted(steps, reverse=True)


def start_afresh_hint(folder: Path) -> str:
    """The exact command that makes the next run train this folder from step 0."""
    return f"mv {folder}/{CHECKPOINTS} {folder}/{CHECKPOINTS}.unusable"
