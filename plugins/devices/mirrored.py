"""`mirrored`: tf.distribute.MirroredStrategy, the global batch split across replicas.

Over the GPUs handed to the task (ids, or count: "all" visible by default), or,
with option ``cpus: N``, over N logical CPU devices (no GPU needed: for tests
and for trying a multi-replica set-up on a laptop).
"""
from __future__ import annotations

from typing import Any

from plugins.devices.common import cuda_visible, selection

KIND = "device_policy"
DEFAULTS: dict[str, Any] = {"ids": None, "count": "all", "cpus": None, "fallback": None}
CONFLICTS = ("multi_worker",)


def gpu_request(options: dict[str, Any]) -> dict[str, Any] | None:
    return None if options.get("cpus") else selection(options)


def environment(options: dict[str, Any], gpu_ids: list[str] | None) -> dict[str, str]:
    return {} if options.get("cpus") else cuda_visible(gpu_ids)


def configure(tf: Any, options: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    cpus = options.get("cpus")
    if not cpus:
        return {"replica_devices": [device.name for device in context["gpus"]]}
    physical = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        physical, [tf.config.LogicalDeviceConfiguration() for _ in range(int(cpus))])
    return {"replica_devices": [device.name for device in tf.config.list_logical_devices("CPU")]}


def strategy(tf: Any, options: dict[str, Any], context: dict[str, Any]) -> Any:
    cpus = options.get("cpus")
    if cpus:
        return tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(int(cpus))])
    return tf.distribute.MirroredStrategy()
