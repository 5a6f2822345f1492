"""`memory_growth`: allocate GPU memory as needed instead of all at once."""
from __future__ import annotations

from typing import Any

KIND = "device_policy"
DEFAULTS: dict[str, Any] = {"fallback": None}
CONFLICTS = ("memory_limit",)  # TensorFlow refuses growth on a device with a fixed limit


def gpu_request(options: dict[str, Any]) -> dict[str, Any]:
    return {}  # whichever GPUs are visible


def environment(options: dict[str, Any], gpu_ids: list[str] | None) -> dict[str, str]:
    return {}


def configure(tf: Any, options: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    for device in context["gpus"]:
        tf.config.experimental.set_memory_growth(device, True)
    return {"memory_growth": {device.name: tf.config.experimental.get_memory_growth(device)
                              for device in context["gpus"]}}


def strategy(tf: Any, options: dict[str, Any], context: dict[str, Any]) -> None:
    return None
