"""Shared set-up of TensorFlow worker processes (imported only inside workers)."""
from __future__ import annotations

import logging
import os
from typing import Any

from plugins import registry
from plugins.errors import TfpipeError
from tasks.devices import cuda_visible_ids, load_policy
from tasks.protocol import emit

logger = logging.getLogger(__name__)


# What start_tensorflow applied: (strategy, record). None until it has run.
_applied: tuple[Any, dict[str, Any]] | None = None


def start_tensorflow(seed: int, deterministic: bool, device: dict[str, Any] | None = None):
    """Import TensorFlow, apply the device policy (tasks.devices.Plan.request()) before any
    op, then set seeds (and op determinism); return the module. See strategy()."""
    global _applied
    try:
        import tensorflow as tf
    except ImportError as exc:
        raise TfpipeError(f"TensorFlow is not installed ({exc}): pip install 'tfpipe[cpu]' "
                          "(or 'tfpipe[gpu]' on a CUDA machine)") from exc
    import keras

    _applied = apply_device(tf, device)

    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    return tf


def strategy():
    """The tf.distribute strategy of the device policy (TensorFlow's default without one)."""
    import tensorflow as tf

    return _applied[0] if _applied else tf.distribute.get_strategy()


def device_record() -> dict[str, Any]:
    """What the device policy did in this process, for the manifest record."""
    return _applied[1] if _applied else {"policies": []}


def apply_device(tf: Any, device: dict[str, Any] | None) -> tuple[Any, dict[str, Any]]:
    """Run each policy's configure() (tf.config) and build the strategy of the last that has one."""
    if not device or not device.get("effective"):
        return tf.distribute.get_strategy(), {"policies": [], "strategy": "default", "replicas": 1}
    record = {key: device.get(key) for key in ("policies", "effective", "options", "gpu_ids", "env", "fallback",
                                               "allocated_by")}
    if device.get("allocated_by"):  # the cluster chose this job's GPUs: record those it got
        record["gpu_ids"] = cluster_gpu_ids()
    names, options = list(device["effective"]), dict(device["options"])
    plugins = [load_policy(name) for name in names]
    gpus = tf.config.list_physical_devices("GPU")
    wants_gpu = [name for name, plugin in zip(names, plugins)
                 if getattr(plugin, "gpu_request", None) and plugin.gpu_request(options) is not None]
    if wants_gpu and not gpus:
        given = os.environ.get("CUDA_VISIBLE_DEVICES")
        if device.get("allocated_by") == "slurm":
            given = (f"Slurm assigned GPU(s) {given} to job {os.environ.get('SLURM_JOB_ID')}: CUDA_VISIBLE_DEVICES="
                     f"{given!r}" if given else f"Slurm assigned job {os.environ.get('SLURM_JOB_ID')} no GPU")
        else:
            given = f"CUDA_VISIBLE_DEVICES={given!r}"
        reason = (f"device policy {'+'.join(wants_gpu)} needs a GPU but TensorFlow sees none "
                  f"({given}; is the CPU-only tensorflow-cpu installed, or the CUDA driver missing?)")
        if options.get("fallback") != "cpu":
            raise TfpipeError(f"{reason}. Set the device option fallback: cpu to train on the CPU "
                              f"instead, or choose --device cpu")
        emit("log", message=f"{reason}; falling back to the CPU (fallback: cpu)")
        keep = [(n, p) for n, p in zip(names, plugins) if n not in wants_gpu and n != "cpu"]
        names = ["cpu"] + [n for n, _ in keep]
        plugins = [load_policy("cpu")] + [p for _, p in keep]
        record["effective"], record["fallback"] = names, reason
    context = {"gpu_ids": record["gpu_ids"], "gpus": gpus}
    applied, chosen, chosen_by = {}, None, None
    for name, plugin in zip(names, plugins):
        try:
            applied[name] = plugin.configure(tf, options, context) or {}
        except TfpipeError:
            raise
        except Exception as exc:
            raise TfpipeError(f"device policy {name!r} failed to configure TensorFlow: "
                              f"{type(exc).__name__}: {exc}") from exc
    for name, plugin in zip(names, plugins):
        try:
            made = plugin.strategy(tf, options, context)
        except Exception as exc:
            raise TfpipeError(f"device policy {name!r} failed to create its strategy: "
                              f"{type(exc).__name__}: {exc}") from exc
        if made is not None:
            chosen, chosen_by = made, name  # later policies refine earlier ones
    chosen = chosen or tf.distribute.get_strategy()
    record.update(applied=applied, strategy=type(chosen).__name__, strategy_from=chosen_by,
                  replicas=int(chosen.num_replicas_in_sync))
    emit("log", message=f"device policy {'+'.join(names)}: {record['strategy']} with "
                        f"{record['replicas']} replica(s)")
    return chosen, record


def cluster_gpu_ids() -> list[str] | None:
    """The GPU ids a cluster gave this job (CUDA_VISIBLE_DEVICES, set by Slurm); None: none."""
    return cuda_visible_ids(os.environ.get("CUDA_VISIBLE_DEVICES", "")) or None


def model_hparams(name: str, plugin: Any, overrides: dict[str, Any]) -> dict[str, Any]:
    """Plugin defaults with the user's overrides; unknown names are an error."""
    unknown = sorted(set(overrides) - set(plugin.DEFAULTS))
    if unknown:
        raise TfpipeError(
            f"model {name!r} has no hyper-parameter {', '.join(map(repr, unknown))} "
            f"(it takes: {', '.join(sorted(plugin.DEFAULTS)) or 'none'}); fix models.{name} in "
            f"your config or --model-params")
    return {**plugin.DEFAULTS, **overrides}


def build_model(name: str, spec: dict[str, Any], overrides: dict[str, Any], expected_kind: str):
    plugin = registry.MODELS.load(name, expected_kind)
    hparams = model_hparams(name, plugin, overrides)
    try:
        model = plugin.build(spec, **hparams)
    except Exception as exc:
        raise TfpipeError(f"model plugin {name!r} failed to build with {hparams}: "
                          f"{type(exc).__name__}: {exc}") from exc
    return model, hparams


def use_xla(choice: str, model_name: str, strategy: Any, model: Any, deterministic: bool) -> bool:
    """Whether to XLA-compile the training step (see xla_wanted). XLA compiles for one device,
    so a strategy with several replicas or workers trains without it (a log line says so
    when it was asked for)."""
    import tensorflow as tf

    wanted = xla_wanted(choice, getattr(registry.MODELS.load(model_name), "JIT_COMPILE", None),
                        on_gpu=bool(tf.config.list_logical_devices("GPU")),
                        layers_support_xla=layers_support_xla(model), deterministic=deterministic)
    one_device = strategy is tf.distribute.get_strategy() or isinstance(strategy, tf.distribute.OneDeviceStrategy)
    if wanted and not one_device:
        emit("log", message=f"jit_compile: {type(strategy).__name__} runs several replicas; training "
                            "without XLA")
        return False
    return wanted


def layers_support_xla(model: Any) -> bool:
    """Keras's own test (keras.src.trainers.trainer.model_supports_jit): every layer's
    supports_jit. A bare tf.Module says nothing about its ops, so it counts as no."""
    layers = getattr(model, "_flatten_layers", None)
    return layers is not None and all(getattr(layer, "supports_jit", True) for layer in layers())


def xla_wanted(choice: str, plugin_flag: bool | None, on_gpu: bool, layers_support_xla: bool,
               deterministic: bool) -> bool:
    """`choice` always / never decides. With auto, the model plugin's JIT_COMPILE decides where it
    sets one (mlp: True, faster on a CPU too). Otherwise auto does what Keras's
    `jit_compile="auto"` does: XLA on a GPU, for a Keras model whose layers all support it (a
    cuDNN LSTM or GRU does not), unless ops are deterministic; never on a CPU, where XLA slows
    most models. On an H200 XLA ran the cnn's step 6x faster (bench/gpu_check.py)."""
    if choice != "auto":
        return choice == "always"
    if plugin_flag is not None:
        return bool(plugin_flag)
    return on_gpu and layers_support_xla and not deterministic


def cpu_threads() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def accepts_training(model: Any) -> bool:
    """Whether `model(x, training=...)` is valid: Keras models yes; a bare tf.Module only if
    its __call__ names `training` or takes **kwargs."""
    import inspect

    import keras

    if isinstance(model, keras.Layer):
        return True
    try:
        parameters = inspect.signature(model.__call__).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "training" or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def model_caller(model: Any):
    """`call(x, training)` for any model plugin result: keras.Model (Sequential, functional,
    subclassed with its own call()) or a tf.Module whose __call__ may not take `training`."""
    if accepts_training(model):
        return lambda x, training: model(x, training=training)
    return lambda x, training: model(x)


def regularization_losses(model: Any) -> list:
    """Keras models collect layer losses; a bare tf.Module has none."""
    return list(getattr(model, "losses", None) or [])
