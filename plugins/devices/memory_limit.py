"""`memory_limit`: cap the memory TensorFlow takes on each GPU.

Option ``limit``: an integer is MB; a number in (0, 1] is a fraction of the
card (the old per_process_gpu_memory_fraction), sized with nvidia-smi.
"""
from __future__ import annotations

import subprocess
from typing import Any

from plugins.errors import TfpipeError

KIND = "device_policy"
DEFAULTS: dict[str, Any] = {"limit": None, "fallback": None}
CONFLICTS = ("memory_growth",)


def gpu_request(options: dict[str, Any]) -> dict[str, Any]:
    return {}


def environment(options: dict[str, Any], gpu_ids: list[str] | None) -> dict[str, str]:
    limit_in_mb(options["limit"], 1)  # reject a bad limit before the subprocess starts
    return {}


def configure(tf: Any, options: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    limits = {}
    for position, device in enumerate(context["gpus"]):
        limit = options["limit"]
        total = None
        if isinstance(limit, float) and limit <= 1:
            physical = (context["gpu_ids"] or [])[position:position + 1] or [str(position)]
            total = gpu_total_memory_mb(physical[0])
        megabytes = limit_in_mb(limit, total)
        tf.config.set_logical_device_configuration(
            device, [tf.config.LogicalDeviceConfiguration(memory_limit=megabytes)])
        limits[device.name] = megabytes
    return {"memory_limit_mb": limits}


def strategy(tf: Any, options: dict[str, Any], context: dict[str, Any]) -> None:
    return None


def gpu_total_memory_mb(physical_id: str) -> int:
    """Total memory of one GPU in MB (nvidia-smi), for fractional memory limits."""
    try:
        out = subprocess.run(["nvidia-smi", f"--id={physical_id}", "--query-gpu=memory.total",
                              "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=30, check=True).stdout
        return int(float(out.strip().splitlines()[0]))
    except (OSError, subprocess.SubprocessError, ValueError, IndexError) as exc:
        raise TfpipeError(f"cannot read the memory size of GPU {physical_id} with nvidia-smi ({exc}); "
                          f"give the memory_limit option limit in MB instead of a fraction") from exc


def limit_in_mb(limit: Any, total_mb: int | None) -> int:
    """memory_limit's `limit`: an integer is MB; a number in (0, 1] is a fraction of the card."""
    if isinstance(limit, bool) or not isinstance(limit, (int, float)) or limit <= 0:
        raise TfpipeError(f"device option limit must be MB (an integer > 0) or a fraction in (0, 1], "
                          f"got {limit!r}")
    if isinstance(limit, int) and limit > 1:
        return limit
    if limit > 1:
        raise TfpipeError(f"device option limit {limit!r}: a fraction must be at most 1; give MB as "
                          f"an integer")
    if total_mb is None:
        raise TfpipeError("device option limit is a fraction but the GPU's memory size is unknown")
    return max(1, int(total_mb * float(limit)))
