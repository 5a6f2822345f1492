"""Whether a path's TensorFlow processes use oneDNN's CPU kernels (Luigi-process side, no TensorFlow).

TensorFlow reads TF_ENABLE_ONEDNN_OPTS once, when it is imported, so the choice travels to the
stage's process in its environment. TensorFlow's own default turns oneDNN on only on CPUs with
AVX-512 VNNI, BF16 or AMX. On a 2-core AVX2 CPU (AMD EPYC) turning it on trained the cnn 1.65x
as fast in a plain `fit` (bench/train_step_rate.py's screen); in short probes the LSTM ran
0.85-0.9x as fast and the GRU and MLP about the same. So the model plugin says: ``ONEDNN = True``
(cnn), ``False``, or nothing (TensorFlow's default).
"""
from __future__ import annotations

import os

from plugins import registry

ENV = "TF_ENABLE_ONEDNN_OPTS"
CHOICES = ("auto", "on", "off")


def onednn_env(choice: str, model: str) -> dict[str, str]:
    """The environment a stage's TensorFlow process needs for `choice` (a setting's value: on,
    off, or auto: the model plugin's literal ONEDNN, unless the user's environment already says)."""
    if choice != "auto":
        return {ENV: "1" if choice == "on" else "0"}
    if ENV in os.environ:
        return {}  # the user's own TF_ENABLE_ONEDNN_OPTS, passed on as it is
    wanted = registry.MODELS.get(model).declared("ONEDNN")
    return {} if not isinstance(wanted, bool) else {ENV: "1" if wanted else "0"}


def onednn_record() -> str:
    """Whether TensorFlow, imported in this process, runs oneDNN's kernels: "on" or "off" as
    TensorFlow itself decided (from TF_ENABLE_ONEDNN_OPTS or, without it, from the CPU)."""
    try:
        from tensorflow.python.util import _pywrap_util_port  # TensorFlow's own answer, as its tests ask it
        return "on" if _pywrap_util_port.IsMklEnabled() else "off"
    except (ImportError, AttributeError):  # not in this TensorFlow: what the environment asked for
        given = os.environ.get(ENV, "").strip().lower()
        return "on" if given in ("1", "true") else "off" if given in ("0", "false") else "unknown"
