"""`cpu`: hide every GPU from the training subprocess."""
from __future__ import annotations

from typing import Any

KIND = "device_policy"
DEFAULTS: dict[str, Any] = {}


def environment(options: dict[str, Any], gpu_ids: list[str] | None) -> dict[str, str]:
    return {"CUDA_VISIBLE_DEVICES": "-1"}


def configure(tf: Any, options: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    tf.config.set_visible_devices([], "GPU")  # also when CUDA ignores the variable
    return {"visible_gpus": len(tf.config.get_visible_devices("GPU"))}


def strategy(tf: Any, options: dict[str, Any], context: dict[str, Any]) -> None:
    return None  # TensorFlow's default strategy on the CPU
