"""A self-contained HTML report of one run (images embedded as data: URIs).

``render_html(summary)`` renders generically from the summary dict every run task
writes, so a new run task gets a report by filling the usual keys:

- ``runs``: [{"path", "name", "metrics": {k: float}, "steps", "train_seconds",
  "artefacts": {label: path}, optional "warnings": [text], "images": {label: png path},
  "tables": {title: [[header...], [row...]...]}, "seed_text", "samples": [{"temperature", "text"}]}]
- ``tasks``: [{"task_id", "stage", "fingerprint", "folder", "status": "ran"|"reused", "duration_s", "params"}]
- ``config``: anything JSON-like; ``run``: {"task", "folder"}.
Other top-level keys are shown as JSON at the end.
"""
from __future__ import annotations

import base64
import json
import time
from datetime import datetime, timezone
from html import escape
from pathlib import Path
from typing import Any

from luigi.task import flatten

from tasks.base import PipelineTask
from tasks.integrity import read_sealed

# Manifests written after this (the start of this luigi invocation) belong to tasks that ran now.
INVOCATION_STARTED = time.time()
_KNOWN = {"runs", "tasks", "config", "run"}

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2em auto;max-width:1200px;color:#222;padding:0 1em}
h1{font-size:1.5em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}h3{margin-bottom:.3em}
table{border-collapse:collapse;margin:.5em 0 1em}td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left;
vertical-align:top;font-size:.9em}th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
.ran{color:#0a6b0a;font-weight:600}.reused{color:#666}code,pre{font-family:ui-monospace,Menlo,monospace;font-size:.85em}
pre{background:#f7f7f7;padding:.6em;overflow-x:auto;white-space:pre-wrap}figure{margin:1em 0}
td code{word-break:break-all}
figure img{max-width:100%;border:1px solid #eee}figcaption{color:#555;font-size:.9em}.missing{color:#a00}
.sample{border-left:3px solid #8ab;padding-left:.8em;margin:.6em 0}
.warning{background:#fff4e0;border-left:3px solid #d80;padding:.4em .8em}
"""


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return escape(str(value if value is not None else ""))
    if isinstance(value, float):
        return f"{value:.6g}" if abs(value) < 1e6 else f"{value:,.1f}"
    if isinstance(value, (dict, list)):
        return f"<code>{escape(json.dumps(value, default=str))}</code>"
    return escape(str(value))


def _num(value: Any) -> str:
    return ' class="num"' if isinstance(value, (int, float)) and not isinstance(value, bool) else ""


def _table(rows: list[list[Any]]) -> str:
    if not rows:
        return ""
    head = "".join(f"<th>{escape(str(cell))}</th>" for cell in rows[0])
    body = "".join("<tr>" + "".join(f"<td{_num(cell)}>{_fmt(cell)}</td>" for cell in row) + "</tr>"
                   for row in rows[1:])
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _image(label: str, path: str) -> str:
    """An <img> with the PNG inlined, or a visible note where the file is missing."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return f'<p class="missing">{escape(label)}: image missing ({escape(str(path))})</p>'
    mime = "image/svg+xml" if str(path).endswith(".svg") else "image/png"
    encoded = base64.b64encode(data).decode("ascii")
    return (f'<figure><img alt="{escape(label)}" src="data:{mime};base64,{encoded}">'
            f"<figcaption>{escape(label)} <code>{escape(str(path))}</code></figcaption></figure>")


def _run(run: dict[str, Any]) -> str:
    parts = [f"<h2>{escape(str(run.get('name', 'run')))} <small>({escape(str(run.get('path', '')))})</small></h2>"]
    parts.extend(f'<p class="warning"><b>Warning:</b> {escape(str(warning))}</p>'
                 for warning in run.get("warnings") or [])
    facts = [["", "value"]]
    for key in ("steps", "train_seconds", "samples_per_s"):
        if run.get(key) is not None:
            facts.append([key.replace("_", " "), run[key]])
    facts += [[key, value] for key, value in (run.get("metrics") or {}).items()]
    if len(facts) > 1:
        parts.append("<h3>Metrics</h3>" + _table(facts))
    for title, rows in (run.get("tables") or {}).items():
        parts.append(f"<h3>{escape(title)}</h3>" + _table(rows))
    for label, path in (run.get("images") or {}).items():
        parts.append(_image(label, path))
    if run.get("samples"):
        parts.append("<h3>Generated text</h3>")
        if run.get("seed_text") is not None:
            parts.append(f"<p>seed: <code>{escape(str(run['seed_text']))}</code></p>")
        for sample in run["samples"]:
            parts.append(f'<div class="sample"><b>temperature {_fmt(sample.get("temperature"))}</b>'
                         f"<pre>{escape(str(sample.get('text', '')))}</pre></div>")
    if (run.get("artefacts") or {}).get("tensorboard"):
        parts.append(f"<p>TensorBoard: <code>tensorboard --logdir {escape(str(run['artefacts']['tensorboard']))}"
                     "</code></p>")
    if run.get("artefacts"):
        parts.append("<h3>Artefacts</h3>" + _table([["", "path"], *([k, v] for k, v in run["artefacts"].items())]))
    return "\n".join(parts)


def _tasks(tasks: list[dict[str, Any]]) -> str:
    rows = ["<tr><th>stage</th><th>task</th><th>fingerprint</th><th>status</th><th>duration (s)</th>"
            "<th>parameters</th><th>folder</th></tr>"]
    for task in tasks:
        status = str(task.get("status", ""))
        params = ", ".join(f"{k}={json.dumps(v, default=str)}" for k, v in (task.get("params") or {}).items())
        rows.append(f"<tr><td>{escape(str(task.get('stage', '')))}</td><td>{escape(str(task.get('task_id', '')))}"
                    f"</td><td><code>{escape(str(task.get('fingerprint', '')))}</code></td>"
                    f'<td class="{escape(status)}">{escape(status)}</td><td class="num">{_fmt(task.get("duration_s"))}'
                    f"</td><td><code>{escape(params)}</code></td><td><code>{escape(str(task.get('folder', '')))}"
                    "</code></td></tr>")
    ran = sum(1 for task in tasks if task.get("status") == "ran")
    return (f"<h2>Tasks</h2><p>{ran} of {len(tasks)} ran in this invocation; the others were reused "
            f"(same fingerprint).</p><table>{''.join(rows)}</table>")


def render_html(summary: dict[str, Any]) -> str:
    """The whole report as one HTML page with no external references."""
    run = summary.get("run") or {}
    title = f"tfpipe report: {run.get('task') or ', '.join(str(r.get('name')) for r in summary.get('runs', []))}"
    generated = datetime.now(timezone.utc).isoformat(timespec="seconds")
    parts = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{escape(title)}</title>"
             f"<style>{_STYLE}</style></head><body><h1>{escape(title)}</h1>",
             f"<p>generated {generated}" + (f" in <code>{escape(str(run['folder']))}</code>" if run.get("folder")
                                             else "") + "</p>"]
    runs = summary.get("runs") or []
    if runs:
        metric_names = sorted({key for run in runs for key in run.get("metrics", {})})
        overview = [["run", "path", "steps", "training time (s)", *metric_names]]
        for item in runs:
            overview.append([item.get("name"), item.get("path"), item.get("steps"), item.get("train_seconds"),
                             *(item.get("metrics", {}).get(k) for k in overview[0][4:])])
        parts.append("<h2>Summary</h2>" + _table(overview))
    parts.extend(_run(item) for item in runs)
    if summary.get("tasks"):
        parts.append(_tasks(summary["tasks"]))
    if summary.get("config") is not None:
        parts.append("<h2>Configuration</h2><pre>" + escape(json.dumps(summary["config"], indent=2, default=str))
                     + "</pre>")
    extra = {key: value for key, value in summary.items() if key not in _KNOWN}
    if extra:
        parts.append("<h2>More</h2><pre>" + escape(json.dumps(extra, indent=2, default=str)) + "</pre>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def task_records(root: PipelineTask, since: float = INVOCATION_STARTED) -> list[dict[str, Any]]:
    """Every pipeline task below `root` (upstream first) with its fingerprint and whether it ran
    in this invocation (manifest written after `since`) or was reused."""
    seen: dict[str, dict[str, Any]] = {}

    def visit(task: PipelineTask) -> None:
        if task.task_id in seen:
            return
        for upstream in task.upstream():
            visit(upstream)
        manifest_path = task.folder() / "manifest.json"
        manifest = read_sealed(task.folder()) or {}  # its seal checked: shown as a result
        try:
            status = "ran" if manifest_path.stat().st_mtime >= since else "reused"
        except OSError:
            status = "ran"  # the root itself: running right now
        seen[task.task_id] = {
            "task_id": task.task_id, "stage": task.stage, "fingerprint": task.fingerprint(),
            "folder": str(task.folder()), "status": status, "duration_s": manifest.get("duration_s"),
            "params": (manifest.get("components") or {}).get("params", task.significant_params()),
        }

    for upstream in flatten(root.requires()):
        if isinstance(upstream, PipelineTask):
            visit(upstream)
    return list(seen.values())
