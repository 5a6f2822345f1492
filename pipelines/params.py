"""The run tasks' Luigi parameters, generated from the declarations in pipelines/settings.py.

Each generated parameter defaults to None (not given: the config decides) and its
description is the setting's help, range, default and config key, so
``luigi --module pipelines ImageRun --help`` documents every setting.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import luigi

from pipelines import settings

T = TypeVar("T", bound=type)
RUN = "run"  # FreeForm.params key of a free-form section every training run takes (executors)


class _KeepsUnreadable:
    """A setting's parameter keeps a command-line value it cannot read as its type (--steps 1.5,
    --learning-rate abc) as the text given. The run task then checks it like every setting
    (pipelines.config.apply_command_line): a scheduling error naming the flag, the value and
    the type expected, instead of a traceback out of Luigi's command-line parser."""

    def parse(self, x: Any) -> Any:
        try:
            return super().parse(x)  # type: ignore[misc]
        except (ValueError, TypeError):  # TypeError: luigi's ListParameter given a JSON number
            return x

    def normalize(self, x: Any) -> Any:
        if isinstance(x, str):
            return self.parse(x)  # luigi's BoolParameter.normalize turns "maybe" into None
        return super().normalize(x)  # type: ignore[misc]

    def _warn_on_wrong_param_type(self, param_name: str, param_value: Any) -> None:
        if not isinstance(param_value, str):  # text is reported by the settings check
            super()._warn_on_wrong_param_type(param_name, param_value)  # type: ignore[misc]


def _keeping_unreadable(base: type[luigi.Parameter]) -> type[luigi.Parameter]:
    return type(base.__name__, (_KeepsUnreadable, base), {"__module__": __name__})


_LUIGI_TYPES: dict[type, Callable[..., luigi.Parameter]] = {
    int: _keeping_unreadable(luigi.OptionalIntParameter),
    float: _keeping_unreadable(luigi.OptionalFloatParameter),
    str: luigi.OptionalParameter,
    list: _keeping_unreadable(luigi.OptionalListParameter),
    dict: _keeping_unreadable(luigi.OptionalDictParameter),
}
_BOOL = _keeping_unreadable(luigi.OptionalBoolParameter)


def show(value: Any) -> str:
    """A default as a user writes it (JSON-like: null, true, [0.2, 0.5])."""
    return value if isinstance(value, str) else json.dumps(value)


def description(declared: settings.Setting) -> str:
    return (f"{declared.help}; {declared.describe()} "
            f"(default: {show(declared.default)}, config key {declared.path})")


def luigi_parameter(declared: settings.Setting) -> luigi.Parameter:
    """An optional Luigi parameter for one setting (None: not given on the command line)."""
    kind = declared.types[0]
    if kind is bool:
        # Explicit parsing: `--deterministic` means true, `--lowercase false` can say false.
        return _BOOL(default=None, description=description(declared),
                     parsing=luigi.BoolParameter.EXPLICIT_PARSING)
    return _LUIGI_TYPES[kind](default=None, description=description(declared))


def _attach(cls: type, name: str, parameter: luigi.Parameter) -> None:
    setattr(cls, name, parameter)
    parameter.__set_name__(cls, name)  # a descriptor added after class creation is not told


def from_settings(*names: str, path: str | None = None) -> Callable[[T], T]:
    """Class decorator: one Luigi parameter per setting named ("data.mirror") or free-form section
    named ("executors": its entry chosen by another setting) and, with `path`
    ("image" or "text"), per setting of that section plus its free-form entries
    (model_params, dataset_options / corpus_options).

    The class's ``setting_params`` maps each parameter name to its setting path, or to the
    free-form section it adds to ("models", "datasets").
    """
    chosen = [settings.get(name) for name in names if name not in settings.FREE_FORM]
    free_sections = [settings.FREE_FORM[name] for name in names if name in settings.FREE_FORM]
    if path is not None:
        chosen += settings.of_section(path)

    def decorate(cls: T) -> T:
        mapping = dict(getattr(cls, "setting_params", {}))
        for declared in chosen:
            _attach(cls, declared.param, luigi_parameter(declared))
            mapping[declared.param] = declared.path
        for free in free_sections:  # a free-form section named outright: its entry for every path
            param = free.params[RUN]
            _attach(cls, param, _LUIGI_TYPES[dict](default=None, description=free.param_help(RUN)))
            mapping[param] = free.section
        if path is not None:
            for free in settings.FREE_FORM.values():
                if path not in free.params:
                    continue  # a section named outright (executors), not per path
                param = free.params[path]
                _attach(cls, param, _LUIGI_TYPES[dict](default=None, description=free.param_help(path)))
                mapping[param] = free.section
        cls.setting_params = mapping
        return cls

    return decorate
