"""Every tfpipe setting, declared once: section, key, type, default, range and help.

Everything else derives from the declarations below:

- the defaults layer of the config (``tfpipe defaults`` prints it as YAML);
- validation of YAML files and command-line values (pipelines.config);
- the run tasks' Luigi parameters and their ``--help`` (pipelines.params);
- ``explain``'s "set by image.learning_rate (default) at pipelines/settings.py:NN"
  (each declaration records its own file and line).

The free-form sections ``models.<name>`` and ``datasets.<name>`` hold plugin
options; their keys are checked against the plugin's DEFAULTS (pipelines.choices).
Importing this module imports neither numpy nor TensorFlow.
"""
from __future__ import annotations

import functools
import math
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plugins.errors import TfpipeError

_PROJECT = Path(__file__).resolve().parent.parent


class ConfigError(TfpipeError):
    """A setting with a wrong key, type or value; the message says where it was set."""


_TYPE_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string",
               list: "a list", dict: "a mapping"}
_ITEM_NAMES = {int: "integers", float: "numbers", str: "strings"}
# YAML 1.1 reads 1e-3 (no dot) as text: accept it where a number is expected.
_EXPONENT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


@dataclass(frozen=True)
class Setting:
    """One setting. For a list setting, the type, range and choices of `item` apply to each item."""

    section: str
    key: str
    types: tuple[type, ...]
    default: Any
    help: str
    declared_at: str  # "pipelines/settings.py:NN"
    param: str  # the run tasks' Luigi parameter (flag --param-name)
    minimum: float | None = None
    maximum: float | None = None
    open_min: bool = False  # the minimum itself is not allowed
    open_max: bool = False
    choices: tuple[str, ...] = ()
    item: type | None = None  # lists: type of each item
    item_noun: str = "item"
    nullable: bool = False
    non_empty: bool = False

    @property
    def path(self) -> str:
        return f"{self.section}.{self.key}"

    @property
    def flag(self) -> str:
        return "--" + self.param.replace("_", "-")

    def range_text(self) -> str:
        """'at least 1', 'greater than 0', 'between 0 and 1 (exclusive)', 'one of a, b' or ''."""
        if self.choices:
            return f"one of {', '.join(self.choices)}"
        low, high = self.minimum, self.maximum
        if low is not None and high is not None:
            bounds = ("exclusive" if self.open_min and self.open_max else
                      "inclusive" if not (self.open_min or self.open_max) else "half-open")
            return f"between {_num(low)} and {_num(high)} ({bounds})"
        if low is not None:
            return f"greater than {_num(low)}" if self.open_min else f"at least {_num(low)}"
        if high is not None:
            return f"less than {_num(high)}" if self.open_max else f"at most {_num(high)}"
        return ""

    def describe(self) -> str:
        """What a value must be, e.g. 'an integer at least 1' or 'a list of numbers'."""
        if self.choices:
            return self.range_text() + (" or null" if self.nullable else "")
        kinds = []
        for kind in self.types:
            if kind is list and self.item is not None:
                kinds.append(f"a list of {_ITEM_NAMES.get(self.item, self.item.__name__)}")
            else:
                kinds.append(_TYPE_NAMES.get(kind, kind.__name__))
        text = " or ".join(kinds) + (" or null" if self.nullable else "")
        limit = self.range_text()
        if limit:
            text += (" each " if self.item is not None else " ") + limit
        return text

    def check(self, value: Any, where: str) -> Any:
        """The value, normalised (int -> float for numbers, tuple -> list, frozen dict -> dict),
        or a ConfigError saying where it was set and what it must be."""
        if value is None:
            if self.nullable:
                return None
            raise ConfigError(f"{where}: {self.path} must be {self.describe()}, got null")
        kind = next((kind for kind in self.types if _is(value, kind)), None)
        if kind is None:
            hint = ""
            if int in self.types and _decimal(value):
                hint = " (a whole number, without a decimal point)"
            raise ConfigError(f"{where}: {self.path} must be {self.describe()}, "
                              f"got {value!r}{hint}")
        value = _convert(value, kind)
        if kind is list:
            if self.non_empty and not value:
                raise ConfigError(f"{where}: {self.path} must not be empty; give at least one "
                                  f"{self.item_noun}, e.g. {_yaml_inline(self.default)}")
            if self.item is not None:
                value = [self._check_item(item, where) for item in value]
            return value
        if kind is dict:
            check_finite(value, self.path, where)
            return value
        return self._check_scalar(value, where, self.path)

    def _check_item(self, item: Any, where: str) -> Any:
        assert self.item is not None
        label = f"{self.path}: {self.item_noun}"
        if not _is(item, self.item):
            raise ConfigError(f"{where}: {label} {item!r} is not "
                              f"{_TYPE_NAMES.get(self.item, self.item.__name__)}")
        return self._check_scalar(_convert(item, self.item), where, label, item_message=True)

    def _check_scalar(self, value: Any, where: str, label: str, item_message: bool = False) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{where}: {label} must be a finite number, got {value}")
        if self.choices and value not in self.choices:
            raise ConfigError(f"{where}: {label} must be {self.range_text()}, got {value!r}")
        if isinstance(value, (int, float)) and not isinstance(value, bool) and not self.choices:
            low, high = self.minimum, self.maximum
            bad = ((low is not None and (value < low or (self.open_min and value == low)))
                   or (high is not None and (value > high or (self.open_max and value == high))))
            if bad:
                if item_message:
                    raise ConfigError(f"{where}: {label} {_num(value)} must be {self.range_text()}")
                raise ConfigError(f"{where}: {label} must be {self.range_text()}, got {value!r}")
        return value


@dataclass(frozen=True)
class FreeForm:
    """Named entries whose keys a plugin defines: ``models.<name>``, ``datasets.<name>``.

    `params` names, per path (``image``/``text``), the run task parameter that adds to the
    entry and `selector` the setting that picks the entry (``image.model`` -> ``models.cnn``).
    """

    section: str
    default: dict[str, dict[str, Any]]
    help: str
    declared_at: str
    params: dict[str, str] = field(default_factory=dict)
    selector: dict[str, str] = field(default_factory=dict)

    def param_help(self, path: str) -> str:
        entry = f"{self.section}.<{self.selector[path]}>"
        return (f"{self.help}; merged over {entry} of the config (config key {entry}), "
                f"e.g. '{{\"key\": 1}}'")


SETTINGS: dict[str, Setting] = {}
FREE_FORM: dict[str, FreeForm] = {}
SECTIONS: dict[str, str] = {}  # section -> help, in declaration order


def _here(depth: int = 2) -> str:
    frame = sys._getframe(depth)
    return f"{_project_relative(frame.f_code.co_filename)}:{frame.f_lineno}"


@functools.lru_cache(maxsize=None)  # resolving a path per declaration was half of this module's import
def _project_relative(filename: str) -> str:
    path = Path(filename).resolve()
    try:
        path = path.relative_to(_PROJECT)
    except ValueError:
        pass
    return path.as_posix()


def section(name: str, help: str) -> None:
    SECTIONS[name] = help


def setting(section: str, key: str, types: type | tuple[type, ...], default: Any, help: str,
            param: str | None = None, **limits: Any) -> Setting:
    """Declare one setting; its declaration's file:line is recorded for `explain`."""
    declared = Setting(section, key, types if isinstance(types, tuple) else (types,), default, help,
                       _here(), param or key, **limits)
    if declared.path in SETTINGS:
        raise RuntimeError(f"{declared.declared_at}: {declared.path} is declared twice "
                           f"(first at {SETTINGS[declared.path].declared_at})")
    if "%" in help:  # argparse formats help text: a bare % breaks `--help`
        raise RuntimeError(f"{declared.declared_at}: write 'percent' instead of % in help texts")
    declared.check(default, declared.declared_at)  # a default must satisfy its own range
    SETTINGS[declared.path] = declared
    return declared


def free_form(section: str, default: dict[str, dict[str, Any]], help: str, params: dict[str, str],
              selector: dict[str, str]) -> FreeForm:
    declared = FreeForm(section, default, help, _here(), params, selector)
    FREE_FORM[section] = declared
    SECTIONS[section] = help
    return declared


# ----- helpers ------------------------------------------------------------------------------

def _is(value: Any, kind: type) -> bool:
    if isinstance(value, bool):
        return kind is bool
    if kind is float:
        return isinstance(value, (int, float)) or (isinstance(value, str)
                                                   and _EXPONENT.fullmatch(value) is not None)
    if kind is list:
        return isinstance(value, (list, tuple))
    if kind is dict:
        return isinstance(value, Mapping)
    return isinstance(value, kind)


def _decimal(value: Any) -> bool:
    """A number with a fraction, or text that reads as one ('1.5' from the command line)."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return False
    return isinstance(value, float)


def _convert(value: Any, kind: type) -> Any:
    if kind is float:
        return float(value)
    if kind is list:
        return [plain(item) for item in value]
    if kind is dict:
        return plain(value)
    return value


def plain(value: Any) -> Any:
    """Luigi's frozen dicts and tuples as plain dicts and lists."""
    if isinstance(value, Mapping):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return value


def check_finite(value: Any, label: str, where: str) -> None:
    """NaN or infinity anywhere in a (nested) value is an error naming the key."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{where}: {label} must be a finite number, got {value}")
    if isinstance(value, Mapping):
        for key, item in value.items():
            check_finite(item, f"{label}.{key}", where)
    elif isinstance(value, (list, tuple)):
        for item in value:
            check_finite(item, label, where)


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _yaml_inline(value: Any) -> str:
    import json

    return json.dumps(value)


# ----- the declarations ---------------------------------------------------------------------

section("data", "Where data is found without the network.")
setting("data", "mirror", str, None, nullable=True, param="mirror",
        help="folder with one sub-folder per dataset (e.g. <mirror>/fashion_mnist/), looked at "
             "before the network; null: $TFPIPE_DATA_MIRROR if set")

section("image", "The image path: download -> preprocess -> train -> evaluate.")
setting("image", "dataset", str, "mnist",
        help="a tfpipe.datasets plugin of kind image_classification (see `tfpipe plugins`); "
             "its options go in datasets.<name>")
setting("image", "model", str, "cnn",
        help="a tfpipe.models plugin of kind image_classifier (mlp, cnn, ...); its "
             "hyper-parameters go in models.<name>")
setting("image", "validation_fraction", float, 0.1, minimum=0, maximum=1, open_min=True,
        open_max=True,
        help="fraction of the training samples held out for validation (at least one sample)")
setting("image", "split_seed", int, 0, minimum=0, help="seed of the validation split")
# 4000 x 128 at Adam 0.002 (was 12000 x 50 at 0.001): batch 128 runs 1.3x the samples per second
# on a CPU, so the cnn's default run fits 10 minutes on 2 cores; its validation accuracy on
# Fashion-MNIST was 93.02-93.42% over two seeds (README, "Quality per minute").
setting("image", "steps", int, 4000, minimum=1,
        help="optimizer steps (batches), not epochs: about 9.5 epochs of Fashion-MNIST")
setting("image", "batch_size", int, 128, minimum=1, help="training samples per optimizer step")
setting("image", "learning_rate", float, 0.002, minimum=0, open_min=True,
        help="learning rate of Adam")
setting("image", "lr_schedule", str, "cosine", choices=("constant", "cosine"),
        help="constant, or cosine: decays to a tenth of learning_rate by the last step")
setting("image", "checkpoint_every", int, 500, minimum=1,
        help="steps between checkpoints and validation passes")
setting("image", "seed", int, 1, minimum=0, help="seed of the initial weights and the batch order")
setting("image", "augment", str, "auto", choices=("auto", "none", "mirror", "shift", "mirror+shift"),
        help="training-time augmentation, drawn from seed and step: mirror (half of each batch "
             "flipped left to right), shift (each image moved by up to 2 pixels each way), "
             "mirror+shift, none, or auto: mirror where the dataset plugin says a mirror keeps "
             "the label (fashion_mnist, cifar10; not digits)")
# auto (new on 2026-11-29): the default cnn's validation accuracy on Fashion-MNIST rose on three of four
# seeds (+0.19, -0.18, +0.27, +0.27 points), for a second forward pass where it predicts, none in training.
setting("image", "test_augment", str, "auto", choices=("auto", "none", "mirror"),
        help="test-time augmentation: mirror (predict from the mean of the logits of each image "
             "and its mirror image, in validation, in the exported model and so in the test "
             "figure; twice the inference cost), none, or auto: mirror where training mirrors "
             "(image.augment)")
setting("image", "label_smoothing", float, 0.0, minimum=0, maximum=1, open_max=True,
        help="training targets mixed with this weight of the uniform distribution over the "
             "classes (0: none); the training loss is then against the smoothed targets, "
             "validation and test losses are not")
# 0.99 (was 0): on Fashion-MNIST's validation set, 93.38% and 93.50% over two seeds against 93.17%
# and 93.43% without it, and 93.35% and 93.30% at 0.998 (README, "Quality per minute").
setting("image", "ema_momentum", float, 0.99, minimum=0, maximum=1, open_max=True,
        help="keep a moving average of the weights, each step weighing the average by this "
             "(0.99: about the last 100 steps; at most 1 - 10/steps, so a short run averages "
             "about its last tenth), and export it: the last validation point, the test figure "
             "and the saved model are the averaged weights (0: the last weights)")
setting("image", "deterministic", bool, False,
        help="deterministic ops: bit-identical reruns, somewhat slower")
setting("image", "jit_compile", str, "auto", choices=("auto", "always", "never"),
        help="XLA-compile the training step: auto (what the model plugin asks for: mlp yes, "
             "cnn and lstm no), always or never; only with one replica. Changes rounding, "
             "not what is learnt")
setting("image", "onednn", str, "auto", choices=("auto", "on", "off"),
        help="oneDNN's CPU kernels (TF_ENABLE_ONEDNN_OPTS) in the TensorFlow processes of the "
             "image path: auto (what the model plugin asks for: cnn on, 1.5x faster on an AVX2 "
             "CPU; else TensorFlow's default or your environment's), on or off. Changes "
             "rounding, not what is learnt")

section("text", "The text path: download -> preprocess -> train -> evaluate and generate.")
setting("text", "corpus", str, "nietzsche",
        help="a tfpipe.datasets plugin of kind text_corpus, the path of a UTF-8 text file or an "
             "http(s) URL (both read by the text_file plugin); its options go in datasets.<name>")
setting("text", "model", str, "lstm",
        help="a tfpipe.models plugin of kind char_language_model (lstm, gru, ...); its "
             "hyper-parameters go in models.<name>")
setting("text", "lowercase", bool, True,
        help="lower-case the text first (a smaller vocabulary learns faster)")
setting("text", "validation_fraction", float, 0.05, minimum=0, maximum=1, open_min=True,
        open_max=True,
        help="fraction of the text just before the held-out part, for validation during training "
             "(the validation curve; tune on it)")
setting("text", "holdout", float, 0.05, minimum=0, maximum=1, open_min=True, open_max=True,
        help="fraction at the end of the text held out for evaluation (the test figure)")
# window 50 x batch 128 (was 100 x 64): the same 6,400 characters per step and the same
# smallest corpus, but 1.37x the characters per second on 2 CPU cores (wider matrix products,
# half the sequential time steps), and the same validation loss in 69% of the time.
setting("text", "window", int, 50, minimum=1,
        help="characters per training sequence (a target at every position)")
# 6,000 (was 3,200), with the lstm's dropout 0.3 (was 0.2): validation 1.893 bits/char on seeds 1
# and 2 against 1.922 and 1.921; the most that fits 15 minutes on 2 AVX-512 cores (README,
# "Quality per minute").
setting("text", "steps", int, 6000, minimum=1,
        help="optimizer steps: about 15 min on 2 AVX-512 CPU cores (44k chars/s), 26 on 2 AVX2 "
             "cores (25k)")
setting("text", "batch_size", int, 128, minimum=1, help="sequences per optimizer step")
setting("text", "learning_rate", float, 0.01, minimum=0, open_min=True,
        help="learning rate of Adam (gradients clipped to norm 5)")
setting("text", "lr_schedule", str, "cosine", choices=("constant", "cosine"),
        help="constant, or cosine: decays to a tenth of learning_rate by the last step")
# 0.99 (was 0): validation 1.9540 and 1.9613 bits/char over two seeds against 1.9576 and 1.9640
# without it (README, "Quality per minute"): small, but on both seeds and for no time.
# 0.1 (was 0), with the lstm's input_dropout 0.1: see plugins/models/lstm.py. 0.03 gained less
# (1.926 and 1.940 on the same seeds).
setting("text", "weight_decay", float, 0.1, minimum=0,
        help="decoupled weight decay (AdamW): each step shrinks every weight by weight_decay "
             "x the learning rate (0: none)")
setting("text", "ema_momentum", float, 0.99, minimum=0, maximum=1, open_max=True,
        help="keep a moving average of the weights and export it, as image.ema_momentum "
             "(0: the last weights)")
setting("text", "checkpoint_every", int, 250, minimum=1,
        help="steps between checkpoints and validation passes")
setting("text", "seed", int, 1, minimum=0, help="seed of the initial weights and the batch order")
setting("text", "deterministic", bool, False,
        help="deterministic ops: bit-identical reruns, somewhat slower")
setting("text", "jit_compile", str, "auto", choices=("auto", "always", "never"),
        help="XLA-compile the training step: auto (what the model plugin asks for: mlp yes, "
             "cnn and lstm no), always or never; only with one replica. Changes rounding, "
             "not what is learnt")
setting("text", "onednn", str, "auto", choices=("auto", "on", "off"),
        help="oneDNN's CPU kernels (TF_ENABLE_ONEDNN_OPTS) in the TensorFlow processes of the "
             "text path: auto (what the model plugin asks for; lstm and gru ask nothing, so "
             "TensorFlow's default or your environment's), on or off. Changes rounding, not "
             "what is learnt")
setting("text", "temperatures", list, [0.2, 0.5, 1.0, 1.2], item=float, item_noun="temperature",
        minimum=0, open_min=True, non_empty=True,
        help="sampling temperatures, one sample each (generation only: never retrains)")
setting("text", "length", int, 400, minimum=1, help="characters generated per temperature")
setting("text", "sample_seed", int, 0, minimum=0,
        help="seed of the seed passage and of the sampling")
setting("text", "seed_length", int, 80, minimum=1,
        help="characters of held-out text that start every sample")

section("device", "How training uses the hardware (never changes what is learnt).")
setting("device", "policy", (str, list), [], item=str, param="device",
        help="tfpipe.devices policies: a name, a comma-separated list or a list, e.g. "
             "[gpu, memory_growth]; []: TensorFlow's own defaults")
setting("device", "options", dict, {}, param="device_options",
        help="options of the device policies (ids, count, limit, cpus, workers, index, "
             "fallback: cpu)")

section("executor", "Where each TensorFlow stage runs (never changes what is computed).")
setting("executor", "name", str, "local", param="executor",
        help="a tfpipe.executors plugin: local (a process on this machine) or slurm (one Slurm job "
             "per stage, see README 'Running on a Slurm cluster'); its options go in executors.<name>")
setting("executor", "stages", dict, {}, param="executor_stages",
        help="another executor for some stages, e.g. {preprocess: local, evaluate: local} with name "
             "slurm; each runs with its own executors.<name> options")

free_form("executors", {},
          help="options of an executor plugin, overriding its DEFAULTS (e.g. slurm: {partition: gpu, "
               "time: '02:00:00', gpus: 1}); `stages: {train: {gpus: 1}, evaluate: {partition: cpu}}` "
               "overrides them for one stage",
          params={"run": "executor_options"}, selector={"run": "executor"})
free_form("models", {"mlp": {}, "cnn": {"dropout": 0.4}, "lstm": {}, "gru": {}},
          help="hyper-parameters of a model plugin, overriding the plugin's DEFAULTS "
               "(cnn dropout 0.4: the classic tutorial used 0.5)",
          params={"image": "model_params", "text": "model_params"},
          selector={"image": "model", "text": "model"})
free_form("datasets", {},
          help="options of a dataset plugin, overriding the plugin's DEFAULTS (e.g. "
               "image_folder: {path: /data/flowers, image_size: [64, 64]})",
          params={"image": "dataset_options", "text": "corpus_options"},
          selector={"image": "dataset", "text": "corpus"})


# ----- lookups ------------------------------------------------------------------------------

def of_section(name: str) -> list[Setting]:
    return [declared for declared in SETTINGS.values() if declared.section == name]


def get(path: str) -> Setting:
    try:
        return SETTINGS[path]
    except KeyError:
        raise ConfigError(f"no setting {path!r}; settings are {', '.join(SETTINGS)}") from None


def default_values() -> dict[str, dict[str, Any]]:
    """{section: {key: default}} of every section, free-form ones included (fresh copies)."""
    import copy

    values: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
    for declared in SETTINGS.values():
        values[declared.section][declared.key] = copy.deepcopy(declared.default)
    for declared_free in FREE_FORM.values():
        values[declared_free.section] = copy.deepcopy(declared_free.default)
    return values
