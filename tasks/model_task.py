"""Base of tasks whose result depends on a model plugin (training on any path).

Kept apart from the image path's modules so a text task's fingerprint covers
only the code it runs.
"""
from __future__ import annotations

from typing import Any

import luigi

from plugins import registry
from tasks.base import PipelineTask, library_versions
from tasks.errors import TfpipeError


def plugin_info(name: str) -> registry.PluginInfo:
    try:
        return registry.get("models", name)
    except registry.PluginError as exc:
        raise TfpipeError(str(exc)) from exc


class ModelTask(PipelineTask):
    """A task whose result depends on a model plugin: its identity and code join the fingerprint."""

    model = luigi.Parameter(description="name of a tfpipe.models plugin")

    def follow_packages(self) -> list[str]:
        return [plugin_info(self.model).top_package]

    def code_modules(self) -> list[str]:
        return super().code_modules() + [plugin_info(self.model).module]

    def fingerprint_components(self) -> dict[str, Any]:
        components = super().fingerprint_components()
        components["plugin"] = plugin_info(self.model).identity()
        tf_version = library_versions()["tensorflow"] or "none"
        components["tensorflow"] = ".".join(tf_version.split(".")[:2])  # a minor upgrade may change results
        return components
