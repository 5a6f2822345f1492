"""The base of the download stages: a task that reads one dataset plugin (image or text).

What both paths share: the plugin of the right KIND (looked up once), its options
checked against its DEFAULTS and its code in the fingerprint. Where the files come from is each stage's own business.
"""
from __future__ import annotations

from typing import Any, ClassVar

from luigi.freezing import recursively_unfreeze

from plugins import registry
from plugins.datasets.api import with_defaults
from tasks.base import PipelineTask


class DatasetTask(PipelineTask):
    """Subclasses set KIND and OPTIONS_FLAG and say which parameters name the plugin."""

    KIND: ClassVar[str] = ""
    OPTIONS_FLAG: ClassVar[str] = ""

    def dataset_name(self) -> str:
        raise NotImplementedError

    def given_options(self) -> Any:
        raise NotImplementedError

    def plugin_info(self) -> registry.PluginInfo:
        return registry.DATASETS.get(self.dataset_name(), self.KIND)

    def plugin(self) -> Any:
        if "_plugin" not in self.__dict__:
            self.__dict__["_plugin"] = registry.DATASETS.load(self.dataset_name(), self.KIND)
        return self.__dict__["_plugin"]

    def options(self) -> dict[str, Any]:
        """The plugin's DEFAULTS with the user's options on top; an unknown one is an error."""
        return with_defaults(self.dataset_name(), self.plugin().DEFAULTS,
                             recursively_unfreeze(self.given_options()), self.OPTIONS_FLAG)

    def code_modules(self) -> list[str]:
        return super().code_modules() + [self.plugin_info().module]

    def follow_packages(self) -> list[str]:
        return [self.plugin_info().top_package]
