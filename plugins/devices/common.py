"""Helpers shared by the built-in GPU policies."""
from __future__ import annotations

from typing import Any


def selection(options: dict[str, Any]) -> dict[str, Any]:
    """GPU request from the shared ids / count options."""
    if options.get("ids"):
        return {"ids": [str(gpu) for gpu in options["ids"]]}
    return {"count": options.get("count", 1)}


def cuda_visible(gpu_ids: list[str] | None) -> dict[str, str]:
    """Show the subprocess only the GPUs handed to it (ids renumber from 0 inside it)."""
    return {"CUDA_VISIBLE_DEVICES": ",".join(gpu_ids)} if gpu_ids else {}
