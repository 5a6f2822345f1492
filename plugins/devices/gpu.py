"""`gpu`: train on the GPU ids given (option ids) or on `count` free GPUs, one device."""
from __future__ import annotations

from typing import Any

from plugins.devices.common import cuda_visible, selection

KIND = "device_policy"
DEFAULTS: dict[str, Any] = {"ids": None, "count": 1, "fallback": None}


def gpu_request(options: dict[str, Any]) -> dict[str, Any]:
    return selection(options)


def environment(options: dict[str, Any], gpu_ids: list[str] | None) -> dict[str, str]:
    return cuda_visible(gpu_ids)


def configure(tf: Any, options: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    return {"gpus": [device.name for device in context["gpus"]]}


def strategy(tf: Any, options: dict[str, Any], context: dict[str, Any]) -> Any:
    return tf.distribute.OneDeviceStrategy("/gpu:0")
