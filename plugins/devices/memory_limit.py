"""`memory_limit`: cap the memory TensorFlow takes on each GPU.

Option ``limit``: an integer is MB; a number in (0, 1] is a fraction of the
card (the old per_process_gpu_memory_fraction), sized with nvidia-smi.
"""
from __future__ import annotations

from typing import Any

from tasks.devices import gpu_total_memory_mb, limit_in_mb

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
