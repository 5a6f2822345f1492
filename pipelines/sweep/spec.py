"""The ``sweep:`` section of a config file: parsed, checked (errors name file:line) and expanded into trials.

A sweep file is an ordinary config (image:, models:, ... validated by pipelines.config) plus::

    sweep:
      path: image                  # or text
      method: grid                 # grid | random (with trials: N and seed: S)
      metric: val_accuracy         # image: val_accuracy, test_accuracy, test_loss; text: val_bits_per_char, ...
      goal: max                    # default: max for accuracies, min for losses
      parameters:
        image.learning_rate: [0.0005, 0.001]        # grid: a list; random: a list or a distribution
        models.cnn.dense_units: [256, 1024]         # only for trials whose model is cnn

A trial is {setting path: value}; each becomes one ordinary ImageRun/TextRun over this file's config,
the trial's values on top (pipelines.sweep.trial_config). Expanding imports nothing heavy: stdlib random.
"""
from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pipelines import config as cfg
from pipelines import config_file as cf
from pipelines import plugin_checks, settings
from pipelines.config import ConfigError, Origin

SECTION = "sweep"
# metric -> goal, per path (pipelines/summary.py writes them). val_*: the validation split, what to tune
# on; the others (test_*, and on the text path bits_per_char, perplexity, accuracy) are the test set's.
METRICS = {"image": {"test_accuracy": "max", "test_loss": "min", "val_accuracy": "max"},
           "text": {"bits_per_char": "min", "perplexity": "min", "accuracy": "max", "val_bits_per_char": "min"}}
DISTRIBUTIONS = ("uniform", "log_uniform", "int", "choice")
_KEYS = ("path", "method", "metric", "goal", "trials", "seed", "parameters")


@dataclass
class Parameter:
    path: str  # "image.learning_rate" or "models.cnn.dense_units"
    where: str  # file:line of the key
    values: list[Any] | None = None  # grid or random choice among these
    distribution: tuple[str, Any] | None = None  # ("log_uniform", [a, b])

    def entry(self) -> tuple[str, str] | None:
        """("models", "cnn") for a free-form key, None for a setting."""
        section, _, rest = self.path.partition(".")
        return (section, rest.split(".", 1)[0]) if section in settings.FREE_FORM else None


@dataclass
class SweepSpec:
    file: str
    path: str
    method: str
    metric: str
    goal: str
    parameters: list[Parameter]
    trials_wanted: int | None = None
    seed: int = 0
    base: cfg.Config = field(default_factory=lambda: cfg.Config({}))  # defaults + the file's sections
    where: dict[str, str] = field(default_factory=dict)  # sweep key -> file:line

    def origin(self, path: str) -> str:
        return next(p.where for p in self.parameters if p.path == path)

    def trials(self) -> list[dict[str, Any]]:
        """Every trial ({path: value}, in parameter order), a free-form key dropped where the
        trial's model (dataset) is another one; identical trials once."""
        if self.method == "grid":
            names = [p.path for p in self.parameters]
            raw = [dict(zip(names, combo)) for combo in itertools.product(*(p.values for p in self.parameters))]
        else:
            rng = random.Random(self.seed)
            raw = [{p.path: _sample(p, rng) for p in self.parameters} for _ in range(self.trials_wanted or 0)]
        unique: dict[str, dict[str, Any]] = {}
        for trial in raw:
            kept = {path: value for path, value in trial.items() if self.applies(path, trial)}
            unique.setdefault(repr(sorted(kept.items())), kept)
        return list(unique.values())

    def selected(self, section: str, trial: dict[str, Any]) -> str:
        """The plugin a trial uses for a free-form section (models -> its model)."""
        selector = f"{self.path}.{settings.FREE_FORM[section].selector[self.path]}"
        return trial.get(selector, self.base.get(self.path, selector.split(".")[1]))

    def applies(self, path: str, trial: dict[str, Any]) -> bool:
        section, _, rest = path.partition(".")
        if section not in settings.FREE_FORM:
            return True
        return self.selected(section, trial) == rest.split(".", 1)[0]


def _sample(parameter: Parameter, rng: random.Random) -> Any:
    if parameter.distribution is None:
        return rng.choice(parameter.values)
    kind, (low, high) = parameter.distribution
    if kind == "uniform":
        return rng.uniform(low, high)
    if kind == "log_uniform":
        return math.exp(rng.uniform(math.log(low), math.log(high)))
    return rng.randint(low, high)


# ----- loading ------------------------------------------------------------------------------

def load(file: str | Path) -> SweepSpec:
    """The sweep of `file`, every value checked; a ConfigError naming file:line otherwise."""
    path = Path(file)
    root = cf._load_nodes(path)
    if not isinstance(root, yaml.MappingNode):
        raise ConfigError(f"{path}: a sweep file needs a 'sweep:' section (see README, Sweeps)")
    cf._check_duplicates(root, path)
    node = next((value for key, value in root.value if key.value == SECTION), None)
    if node is None:
        raise ConfigError(f"{path}: no 'sweep:' section; add one with path, method, metric and parameters "
                          "(see README, Sweeps)")
    base = cfg.resolve(str(path), skip=(SECTION,))
    where = f"{path}:{cf._line(node)}"
    if not isinstance(node, yaml.MappingNode):
        raise ConfigError(f"{where}: 'sweep' must be a mapping (path, method, metric, parameters)")
    nodes = {key.value: (value, f"{path}:{cf._line(key)}") for key, value in node.value}
    for key, (_, at) in nodes.items():
        if key not in _KEYS:
            raise ConfigError(f"{at}: unknown key sweep.{key}; known keys: {', '.join(_KEYS)}")
    loader = yaml.SafeLoader("")

    def scalar(key: str, default: Any = None) -> tuple[Any, str]:
        if key not in nodes:
            return default, where
        value_node, at = nodes[key]
        return cf._construct(loader, value_node, path), at

    run_path, at = scalar("path")
    if run_path not in METRICS:
        raise ConfigError(f"{at}: sweep.path must be image or text, got {run_path!r}")
    method, at = scalar("method", "grid")
    if method not in ("grid", "random"):
        raise ConfigError(f"{at}: sweep.method must be grid or random, got {method!r}")
    metric, metric_at = scalar("metric")
    if metric not in METRICS[run_path]:
        raise ConfigError(f"{metric_at}: the {run_path} path does not produce metric {metric!r}; "
                          f"sweep.metric must be one of {', '.join(METRICS[run_path])}")
    goal, at = scalar("goal", METRICS[run_path][metric])
    if goal not in ("max", "min"):
        raise ConfigError(f"{at}: sweep.goal must be max or min, got {goal!r}")
    trials, trials_at = scalar("trials")
    seed, seed_at = scalar("seed", 0)
    if method == "random":
        if trials is None:
            raise ConfigError(f"{nodes['method'][1]}: a random sweep needs 'trials: N' (how many to draw) "
                              "under sweep:, and optionally 'seed: S'")
        _check_int(trials, "sweep.trials", trials_at, 1)
        _check_int(seed, "sweep.seed", seed_at, 0)
    elif trials is not None:
        raise ConfigError(f"{trials_at}: sweep.trials is for method: random; a grid runs every combination")
    spec = SweepSpec(str(path), run_path, method, metric, goal, [], trials, seed, base,
                     {key: at for key, (_, at) in nodes.items()})
    if "parameters" not in nodes or not isinstance(nodes["parameters"][0], yaml.MappingNode) \
            or not nodes["parameters"][0].value:
        at = nodes["parameters"][1] if "parameters" in nodes else where
        raise ConfigError(f"{at}: sweep.parameters must map setting keys to values, e.g. "
                          "image.learning_rate: [0.001, 0.003]")
    for key_node, value_node in nodes["parameters"][0].value:
        at = f"{path}:{cf._line(key_node)}"
        spec.parameters.append(_parameter(spec, key_node.value, value_node, at, loader, path))
    _check_applicable(spec)
    return spec


def _check_int(value: Any, label: str, where: str, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{where}: {label} must be an integer at least {minimum}, got {value!r}")


def _parameter(spec: SweepSpec, key: str, node: yaml.Node, where: str, loader: yaml.SafeLoader,
               path: Path) -> Parameter:
    check = _checker(spec, str(key), where)
    value = cf._construct(loader, node, path)
    if isinstance(value, dict):
        if spec.method == "grid":
            raise ConfigError(f"{where}: {key}: a grid takes a list of values, e.g. [0.001, 0.003]; "
                              "distributions are for method: random")
        if len(value) != 1 or next(iter(value)) not in DISTRIBUTIONS:
            raise ConfigError(f"{where}: {key}: give one distribution, one of "
                              f"{', '.join(DISTRIBUTIONS)}, e.g. {{log_uniform: [0.0001, 0.01]}}")
        kind, bounds = next(iter(value.items()))
        if kind == "choice":
            return Parameter(key, where, values=_values(key, bounds, where, check))
        if not isinstance(bounds, list) or len(bounds) != 2:
            raise ConfigError(f"{where}: {key}: {kind} takes [low, high], got {bounds!r}")
        low, high = (check(bound) for bound in bounds)
        if kind == "int" and not all(isinstance(b, int) and not isinstance(b, bool) for b in (low, high)):
            raise ConfigError(f"{where}: {key}: int takes whole numbers [low, high], got {bounds!r}")
        if kind != "int" and not all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in (low, high)):
            raise ConfigError(f"{where}: {key}: {kind} takes numbers [low, high], got {bounds!r}")
        if low > high or (kind == "log_uniform" and low <= 0):
            need = "0 < low <= high" if kind == "log_uniform" else "low <= high"
            raise ConfigError(f"{where}: {key}: {kind} needs {need}, got {bounds!r}")
        return Parameter(key, where, distribution=(kind, [low, high]))
    return Parameter(key, where, values=_values(key, value, where, check))


def _values(key: str, value: Any, where: str, check: Any) -> list[Any]:
    if not isinstance(value, list):
        raise ConfigError(f"{where}: {key}: give a list of values to try, e.g. [{value!r}], got {value!r}")
    if not value:
        raise ConfigError(f"{where}: {key}: the list of values is empty; give at least one value")
    return [check(item) for item in value]


def _checker(spec: SweepSpec, key: str, where: str) -> Any:
    """A function checking one value of swept `key` (a ConfigError naming `where`)."""
    section, _, rest = key.partition(".")
    if section == spec.path and key in settings.SETTINGS:
        declared = settings.SETTINGS[key]
        return lambda value: declared.check(value, where)
    if section in settings.FREE_FORM and rest.count(".") == 1:
        name, option = rest.split(".")
        return _option_checker(spec, section, name, option, key, where)
    hint = (f"settings of {spec.path}: {', '.join(s.path for s in settings.of_section(spec.path))}; "
            f"or models.<model>.<hyper-parameter>, datasets.<name>.<option>")
    raise ConfigError(f"{where}: cannot sweep {key!r}: no such key for the {spec.path} path ({hint})")


def _option_checker(spec: SweepSpec, section: str, name: str, option: str, key: str, where: str) -> Any:
    if section == "models":
        kind = "image_classifier" if spec.path == "image" else "char_language_model"
        info = plugin_checks.check_model(name, kind, where)
    else:
        kind = "image_classification" if spec.path == "image" else "text_corpus"
        info = plugin_checks.check_dataset(name, kind, where)
    declared = info.declared_defaults()
    if declared is not None and option not in declared:
        raise ConfigError(f"{where}: cannot sweep {key!r}: plugin {name!r} has no option {option!r}; it takes: "
                          f"{', '.join(sorted(declared)) or 'none'} (its DEFAULTS)")
    default = (declared or {}).get(option)

    def check(value: Any) -> Any:
        settings.check_finite(value, key, where)
        expected = type(default)
        fits = (default is None or isinstance(value, expected) and isinstance(value, bool) == isinstance(default, bool)
                or expected is float and isinstance(value, int) and not isinstance(value, bool))
        if not fits:
            noun = settings._TYPE_NAMES.get(expected, expected.__name__)
            raise ConfigError(f"{where}: {key} must be {noun} like its default {default!r}, "
                              f"got {value!r}")
        return value

    return check


def _check_applicable(spec: SweepSpec) -> None:
    """A models./datasets. key no trial can use is a mistake (a model the sweep never picks)."""
    for parameter in spec.parameters:
        entry = parameter.entry()
        if entry is None:
            continue
        section, name = entry
        selector = f"{spec.path}.{settings.FREE_FORM[section].selector[spec.path]}"
        swept = next((p for p in spec.parameters if p.path == selector), None)
        chosen = set(swept.values or []) if swept is not None else {spec.base.get(*selector.split("."))}
        if name not in chosen:
            raise ConfigError(f"{parameter.where}: {parameter.path} applies to no trial: no trial's {selector} is "
                              f"{name!r} ({selector} is {', '.join(map(str, sorted(chosen)))})")


# ----- a trial's config ---------------------------------------------------------------------

def trial_config(file: str, values: dict[str, Any], origins: dict[str, str]) -> cfg.Config:
    """Defaults, the sweep file's sections, then the trial's values (each remembering the line of
    the sweep file that swept it): what an ImageRun/TextRun of this trial resolves."""
    base = cfg.resolve(file, skip=(SECTION,))
    layer = cfg.Config({})
    for path, value in values.items():
        section, _, rest = path.partition(".")
        if section in settings.FREE_FORM:
            name, option = rest.split(".", 1)
            layer.values.setdefault(section, {}).setdefault(name, {})[option] = value
        else:
            layer.values.setdefault(section, {})[rest] = settings.SETTINGS[path].check(value, origins[path])
        layer.origins[path] = Origin(f"{origins[path]} (sweep)")
    return cfg.merge(base, layer)


def best_config(file: str, values: dict[str, Any]) -> dict[str, Any]:
    """The sweep file's own sections with one trial's values on top: as YAML, a config that an
    ordinary run resolves to exactly that trial."""
    own = cfg.load_file(Path(file), skip=(SECTION,)).values
    for path, value in values.items():
        section, _, rest = path.partition(".")
        if section in settings.FREE_FORM:
            name, option = rest.split(".", 1)
            own.setdefault(section, {}).setdefault(name, {})[option] = value
        else:
            own.setdefault(section, {})[rest] = value
    return own
