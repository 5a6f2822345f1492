"""Say, before running, what a run would do and why: ``tfpipe explain FullRun ...``.

For every task in the graph: complete, will run, or will resume from a
checkpoint; for those that will run, what differs from the completed run of
the same task (same stage, name and family) that is closest to it (fewest
differing components; the newest among equals): a parameter (and the config
key that set it), a source file, the plugin, the data, or an upstream task.
Runs nothing and imports no TensorFlow.
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import luigi
from luigi.cmdline_parser import CmdlineParser
from luigi.task import flatten

from tasks import manifest_index
from tasks.base import PipelineTask, read_manifest
from tasks.checkpoints import checkpoint_steps
from tasks.fingerprint import locate_module
from tasks.integrity import FIX, IntegrityError, read_sealed
from tasks.manifest_index import component_items, flatten_dict, item_order

OriginOf = Callable[[str], "str | None"]
_ABSENT = object()


@dataclass
class Verdict:
    task: PipelineTask
    depth: int
    state: str  # "complete", "will run", "will resume from step N", "damaged"
    reasons: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Change:
    """One differing component: kind is params, code, plugin, tensorflow, source, upstream or
    another manifest key; key names what differs inside it."""

    kind: str
    key: str
    old: Any
    new: Any


def explain_command_line(argv: list[str]) -> list[Verdict]:
    """Verdicts for the task `luigi --module pipelines ARGV` would run."""
    # Parameters of upstream tasks may come from the command line too, so the
    # parser stays installed while the graph is walked.
    # --local-scheduler: explaining runs nothing, so it needs no luigid (server.check_reachable).
    with CmdlineParser.global_instance([*argv, "--local-scheduler"]) as parser:
        return list(explain(parser.get_task_obj()))


def show(value: Any) -> str:
    """A value as a user writes it: 0.001, cosine, [0.5, 1.0], null; (unset) when absent."""
    if value is _ABSENT:
        return "(unset)"
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=str)


def format_change(key: str, old: Any, new: Any) -> str:
    return f"{key}: {show(old)} -> {show(new)}"


def changes(old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    """Every differing component of two fingerprints' components (manifests store them)."""
    old_items, new_items = component_items(old), component_items(new)
    found = []
    for item in sorted(old_items.keys() | new_items.keys(), key=item_order):
        missing = _ABSENT if item[0] == "params" else None  # a parameter shows as (unset)
        before, after = old_items.get(item, missing), new_items.get(item, missing)
        if before != after:
            found.append(Change(item[0], item[1], before, after))
    return found


def _module_file(module: str) -> str:
    path = locate_module(module)
    return f"{module} ({path})" if path else module


def _describe(change: Change, origin_of: OriginOf) -> str:
    if change.kind == "params":
        origin = origin_of(change.key)
        where = f" (set by {origin})" if origin else ""
        return f"parameter {format_change(change.key, change.old, change.new)}{where}"
    if change.kind == "code":
        if change.old is None:
            return f"code: now also runs {_module_file(change.key)}"
        if change.new is None:
            return f"code: no longer runs {change.key}"
        return f"source changed: {_module_file(change.key)}"
    if change.kind == "upstream":
        return f"upstream changed: {change.key}"
    if change.kind == "source":
        old = change.old if isinstance(change.old, dict) else {"": change.old}
        new = change.new if isinstance(change.new, dict) else {"": change.new}
        differing = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        return f"data changed: {', '.join(k or 'source' for k in differing)}"
    label = {"plugin": "plugin", "tensorflow": "TensorFlow version"}.get(change.kind, change.kind)
    old = flatten_dict(change.old) or {"": change.old}
    new = flatten_dict(change.new) or {"": change.new}
    parts = [format_change(k, old.get(k, _ABSENT), new.get(k, _ABSENT)) if k else
             f"{show(change.old)} -> {show(change.new)}"
             for k in sorted(set(old) | set(new)) if old.get(k, _ABSENT) != new.get(k, _ABSENT)]
    return f"{label} changed: {'; '.join(parts)}"


def diff_components(old: dict[str, Any], new: dict[str, Any],
                    origin_of: OriginOf = lambda key: None) -> list[str]:
    """Human reasons why `new` components differ from `old` ones."""
    reasons = [_describe(change, origin_of) for change in changes(old, new)]
    return reasons or ["same inputs as an earlier run whose folder was removed"]


def closest_completed(task: PipelineTask) -> dict[str, Any] | None:
    """The earlier completed run of the same task (same stage, name and family) whose components
    differ least from this task's, the newest among equals: after an edit and its revert, the run
    that matches the reverted code, not the newest. Scored from the stage's manifest index; only
    the chosen run's manifest is read."""
    stage_dir, name = task.folder().parent, task.run_name()
    pattern = re.compile(re.escape(name) + r"-[0-9a-f]+$")
    runs = manifest_index.entries(stage_dir, name, task.get_task_family(), pattern.match, read_manifest)
    scorer = manifest_index.Scorer(stage_dir, name, task.components())
    runs.sort(key=lambda run: run.finished, reverse=True)  # the newest first among equals
    for run in scorer.fewest_changes_first(runs):
        manifest = read_manifest(run.folder)
        if manifest and manifest.get("task") == task.get_task_family():
            return manifest
    return None  # every indexed folder has gone since


def checkpoint_step(folder: Path) -> int | None:
    """Step of the newest checkpoint an unfinished training left behind (from the files, as
    training itself finds them: a lost state file does not hide them)."""
    steps = checkpoint_steps(folder)
    return steps[0] if steps else None


def _origin_lookup(run: luigi.Task | None) -> OriginOf:
    origin_of = getattr(run, "origin_of", None)
    return origin_of if callable(origin_of) else lambda key: None


def explain(root: luigi.Task) -> Iterator[Verdict]:
    """Verdicts for `root` and everything upstream, depth first, each task once. A parameter's
    origin comes from the run task that built the stage task (exact config path)."""
    seen: set[str] = set()

    def visit(task: luigi.Task, depth: int, run: luigi.Task | None) -> Iterator[Verdict]:
        if task.task_id in seen or not isinstance(task, PipelineTask):
            return
        seen.add(task.task_id)
        if callable(getattr(task, "origin_of", None)):
            run = task  # the nearest run task owns the settings of the stages below it
        try:
            read_sealed(task.folder())
        except IntegrityError as exc:  # complete() says no; the run would stop here, naming it
            yield Verdict(task, depth, "damaged", [exc.problem, f"run `{FIX}`, then rerun to redo it"])
        else:
            yield from verdict(task, depth, run)
        # A task that runs more than it requires (a sweep trial runs its own run's graph) says so.
        upstream_of = getattr(task, "explained_upstream", task.requires)
        for upstream in flatten(upstream_of()):
            yield from visit(upstream, depth + 1, run)

    def verdict(task: PipelineTask, depth: int, run: luigi.Task | None) -> Iterator[Verdict]:
        if task.complete():
            yield Verdict(task, depth, "complete")
        else:
            step = checkpoint_step(task.folder())
            state = f"will resume from step {step}" if step else "will run"
            previous = closest_completed(task)
            if previous is None:
                reasons = ["never ran before with this name"]
            else:
                reasons = diff_components(previous.get("components", {}), task.components(),
                                          _origin_lookup(run))
            yield Verdict(task, depth, state, reasons)

    yield from visit(root, 0, None)


def render(verdicts: list[Verdict]) -> str:
    lines = []
    for verdict in verdicts:
        indent = "  " * verdict.depth
        lines.append(f"{indent}{verdict.task.label()}  [{verdict.state}]  {verdict.task.folder()}")
        lines.extend(f"{indent}    - {reason}" for reason in verdict.reasons)
    return "\n".join(lines)
