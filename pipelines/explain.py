"""Say, before running, what a run would do and why: `python -m pipelines explain FullRun ...`.

For every task in the graph: complete, will run, or will resume from a
checkpoint; for those that will run, what differs from the last completed run
of the same task (same stage and name): a parameter (and the config key that
set it), a source file, the plugin, the data, or an upstream task. Runs
nothing and imports no TensorFlow.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import luigi
from luigi.cmdline_parser import CmdlineParser
from luigi.task import flatten

from tasks.base import MANIFEST, PipelineTask, read_manifest
from tasks.fingerprint import locate_module


@dataclass
class Verdict:
    task: PipelineTask
    depth: int
    state: str  # "complete", "will run", "will resume from step N"
    reasons: list[str] = field(default_factory=list)


def explain_command_line(argv: list[str]) -> list[Verdict]:
    """Verdicts for the task `luigi --module pipelines ARGV` would run."""
    # Parameters of upstream tasks may come from the command line too, so the
    # parser stays installed while the graph is walked.
    with CmdlineParser.global_instance(argv) as parser:
        return list(explain(parser.get_task_obj()))


def last_completed(task: PipelineTask) -> dict[str, Any] | None:
    """Newest manifest of an earlier run of the same task (same stage, name and family)."""
    stage_dir = task.folder().parent
    pattern = re.compile(re.escape(task.run_name()) + r"-[0-9a-f]+$")
    best = None
    for manifest_path in stage_dir.glob(f"{task.run_name()}-*/{MANIFEST}"):
        if not pattern.match(manifest_path.parent.name):
            continue
        manifest = read_manifest(manifest_path.parent)
        if manifest and manifest.get("task") == task.get_task_family():
            if best is None or manifest.get("finished", "") > best.get("finished", ""):
                best = manifest
    return best


def checkpoint_step(folder: Path) -> int | None:
    """Step of the newest checkpoint an unfinished training left behind."""
    state = folder / "checkpoints" / "checkpoint"
    if not state.is_file():
        return None
    match = re.search(r'model_checkpoint_path:\s*"ckpt-(\d+)"', state.read_text("utf-8"))
    return int(match.group(1)) if match else None


def _module_file(module: str) -> str:
    path = locate_module(module)
    return f"{module} ({path})" if path else module


def diff_components(old: dict[str, Any], new: dict[str, Any], origin_of) -> list[str]:
    """Human reasons why `new` components differ from `old` ones."""
    reasons = []
    old_params, new_params = old.get("params", {}), new.get("params", {})
    for key in sorted(set(old_params) | set(new_params)):
        if old_params.get(key) != new_params.get(key):
            origin = origin_of(key)
            where = f" (set by {origin})" if origin else ""
            reasons.append(f"parameter {key}: {old_params.get(key)!r} -> {new_params.get(key)!r}{where}")
    old_code, new_code = old.get("code", {}), new.get("code", {})
    for module in sorted(set(old_code) | set(new_code)):
        if module not in old_code:
            reasons.append(f"code: now also runs {_module_file(module)}")
        elif module not in new_code:
            reasons.append(f"code: no longer runs {module}")
        elif old_code[module] != new_code[module]:
            reasons.append(f"source changed: {_module_file(module)}")
    for key, label in (("plugin", "plugin"), ("tensorflow", "TensorFlow version"), ("source", "data")):
        if old.get(key) != new.get(key):
            if key == "source" and isinstance(new.get(key), dict) and isinstance(old.get(key), dict):
                changed = sorted(k for k in set(old[key]) | set(new[key]) if old[key].get(k) != new[key].get(k))
                reasons.append(f"data changed: {', '.join(changed)}")
            else:
                reasons.append(f"{label} changed: {old.get(key)} -> {new.get(key)}")
    old_up, new_up = old.get("upstream", {}), new.get("upstream", {})
    for name in sorted(set(old_up) | set(new_up)):
        if old_up.get(name) != new_up.get(name):
            reasons.append(f"upstream changed: {name}")
    for key in sorted(set(old) | set(new)):
        if key not in {"params", "code", "plugin", "tensorflow", "source", "upstream"} and old.get(key) != new.get(key):
            reasons.append(f"{key} changed: {old.get(key)} -> {new.get(key)}")
    return reasons or ["same inputs as an earlier run whose folder was removed"]


def _origin_lookup(root: luigi.Task):
    origins = getattr(root, "config_origins", None)
    return origins() if callable(origins) else lambda key: None


def explain(root: luigi.Task) -> Iterator[Verdict]:
    """Verdicts for `root` and everything upstream, depth first, each task once."""
    origin_of = _origin_lookup(root)
    seen: set[str] = set()

    def visit(task: luigi.Task, depth: int) -> Iterator[Verdict]:
        if task.task_id in seen or not isinstance(task, PipelineTask):
            return
        seen.add(task.task_id)
        if task.complete():
            yield Verdict(task, depth, "complete")
        else:
            step = checkpoint_step(task.folder())
            state = f"will resume from step {step}" if step else "will run"
            previous = last_completed(task)
            if previous is None:
                reasons = ["never ran before with this name"]
            else:
                reasons = diff_components(previous.get("components", {}), task.components(),
                                          origin_of)
            yield Verdict(task, depth, state, reasons)
        for upstream in flatten(task.requires()):
            yield from visit(upstream, depth + 1)

    yield from visit(root, 0)


def render(verdicts: list[Verdict]) -> str:
    lines = []
    for verdict in verdicts:
        indent = "  " * verdict.depth
        lines.append(f"{indent}{verdict.task.label()}  [{verdict.state}]  {verdict.task.folder()}")
        lines.extend(f"{indent}    - {reason}" for reason in verdict.reasons)
    return "\n".join(lines)
