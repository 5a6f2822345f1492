"""Shared set-up of TensorFlow worker processes (imported only inside workers)."""
from __future__ import annotations

import logging
import os
from typing import Any

from plugins import registry
from tasks.errors import TfpipeError

logger = logging.getLogger(__name__)


def start_tensorflow(seed: int, deterministic: bool):
    """Import TensorFlow with seeds (and op determinism) set; return the module."""
    try:
        import tensorflow as tf
    except ImportError as exc:
        raise TfpipeError(f"TensorFlow is not installed ({exc}): pip install 'tfpipe[cpu]' "
                          "(or 'tfpipe[gpu]' on a CUDA machine)") from exc
    import keras

    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    return tf


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
    try:
        plugin = registry.load("models", name)
    except registry.PluginError as exc:
        raise TfpipeError(str(exc)) from exc
    if plugin.KIND != expected_kind:
        raise TfpipeError(f"model {name!r} is a {plugin.KIND} plugin; this path needs a {expected_kind}")
    hparams = model_hparams(name, plugin, overrides)
    try:
        model = plugin.build(spec, **hparams)
    except Exception as exc:
        raise TfpipeError(f"model plugin {name!r} failed to build with {hparams}: "
                          f"{type(exc).__name__}: {exc}") from exc
    return model, hparams


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
