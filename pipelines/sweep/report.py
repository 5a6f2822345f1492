"""A sweep's report.html (trials ranked by the metric, charts) and best.yaml (the best trial as a config).

Charts are PNGs drawn with matplotlib and inlined like the run report's (pipelines/report.py);
numpy and matplotlib are imported only here, when a sweep's report is written.
"""
from __future__ import annotations

import json
import math
import os
from datetime import datetime, timezone
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from pipelines.report import _STYLE, _fmt, _image
from pipelines.run_task import walk
from pipelines.sweep.spec import SweepSpec, best_config
from tasks import atomic
from tasks.model_task import TrainingTask

if TYPE_CHECKING:
    from pipelines.sweep.tasks import Sweep, SweepTrial

_EXTRA_STYLE = ("tr.best td{background:#e8f6e8;font-weight:600}tr.failed td{color:#a00}"
                "td.status{max-width:32em;font-size:.85em}")
_BEST = "#111111"  # the best trial's curve: thick and black, every other trial a colour of tab10


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f'<td class="num">{value:.6g}</td>'
    if isinstance(value, int) and not isinstance(value, bool):
        return f'<td class="num">{value}</td>'
    return f"<td>{_fmt(value)}</td>"


def trial_result(trial: SweepTrial) -> dict[str, Any]:
    """What the report shows of one trial: its values, outcome, metrics and validation history."""
    record = trial.manifest()["record"]
    result = {"values": record["values"], "status": record["status"], "error": record["error"],
              "final": record.get("final", True), "run": record["run"], "metrics": {}, "train_seconds": None,
              "history": []}
    train = next(task for task in walk(trial.trial_run()) if isinstance(task, TrainingTask))
    try:  # a failed trial's curve up to its last checkpoint
        result["history"] = json.loads((train.folder() / "history.json").read_text("utf-8")).get("validation", [])
    except (OSError, ValueError):
        pass
    if record["status"] == "ok":
        run = json.loads((Path(record["run"]) / "summary.json").read_text("utf-8"))["runs"][0]
        result.update(metrics=run["metrics"], train_seconds=run.get("train_seconds"), steps=run.get("steps"))
    return result


def ranked(results: list[dict[str, Any]], spec: SweepSpec) -> list[dict[str, Any]]:
    """Best first by the metric; trials without it (failed, NaN) last."""
    def key(result: dict[str, Any]) -> tuple[int, float]:
        value = result["metrics"].get(spec.metric)
        if result["status"] != "ok" or not isinstance(value, (int, float)) or not math.isfinite(value):
            return (1, 0.0)
        return (0, -value if spec.goal == "max" else value)

    return sorted(results, key=key)


def write_report(sweep: Sweep, folder: Path) -> dict[str, Any]:
    spec = sweep.spec()
    results = ranked([trial_result(trial) for trial in sweep.requires()], spec)
    best = results[0] if results and results[0]["status"] == "ok" and key_ok(results[0], spec) else None
    record: dict[str, Any] = {"report": str(folder / "report.html"), "trials": len(results),
                              "failed": sum(1 for r in results if r["status"] != "ok"),
                              "retry": [r["run"] for r in results if not r["final"]],
                              "best": None, "best_yaml": None}
    if best is not None:
        text = (f"# The best trial of the sweep {spec.file} ({spec.metric} {best['metrics'][spec.metric]:.6g}).\n"
                f"# `luigi --module pipelines {_run_task(spec)} --config best.yaml` reuses its results.\n"
                + yaml.safe_dump(best_config(spec.file, best["values"]), sort_keys=False))
        atomic.write_text(folder / "best.yaml", text)
        record.update(best={"values": best["values"], "run": best["run"], spec.metric: best["metrics"][spec.metric]},
                      best_yaml=str(folder / "best.yaml"))
    images = _charts(spec, results, best, folder)
    atomic.write_text(folder / "report.html", render(sweep, spec, results, best, images, folder))
    atomic.write_json(folder / "summary.json", {"sweep": spec.file, "metric": spec.metric, "goal": spec.goal,
                                                "results": [{k: v for k, v in r.items() if k != "history"}
                                                            for r in results], **record})
    atomic.write_text(folder / "summary.md", markdown(spec, results))
    return record


def key_ok(result: dict[str, Any], spec: SweepSpec) -> bool:
    value = result["metrics"].get(spec.metric)
    return isinstance(value, (int, float)) and math.isfinite(value)


def _run_task(spec: SweepSpec) -> str:
    return "ImageRun" if spec.path == "image" else "TextRun"


def markdown(spec: SweepSpec, results: list[dict[str, Any]]) -> str:
    names = [p.path for p in spec.parameters]
    lines = [f"| rank | {' | '.join(names)} | {spec.metric} | training time (s) | status |",
             "|---" * (len(names) + 4) + "|"]
    for rank, result in enumerate(results, 1):
        cells = [str(result["values"].get(name, "-")) for name in names]
        metric = result["metrics"].get(spec.metric)
        lines.append(f"| {rank} | {' | '.join(cells)} | {'' if metric is None else f'{metric:.4f}'} | "
                     f"{result['train_seconds'] or ''} | {result['status']} |")
    return "\n".join(lines) + "\n"


# ----- charts -------------------------------------------------------------------------------

def _charts(spec: SweepSpec, results: list[dict[str, Any]], best: dict[str, Any] | None,
            folder: Path) -> dict[str, str]:
    from tasks.plots import _pyplot, save_figure

    plt = _pyplot()
    images = {}
    path = folder / "metric_by_parameter.png"
    if _metric_by_parameter(spec, results, best, path, plt):
        images[f"{spec.metric} against each swept parameter (best in green, failed trials left out)"] = str(path)
    path = folder / "validation_curves.png"
    if _validation_curves(results, best, path, plt, save_figure):
        images["validation curves of every trial (best thick black, failed dashed)"] = str(path)
    return images


def _metric_by_parameter(spec: SweepSpec, results, best, path: Path, plt) -> bool:
    from tasks.plots import save_figure

    done = [r for r in results if r["status"] == "ok" and key_ok(r, spec)]
    if not done:
        return False
    fig, axes = plt.subplots(1, len(spec.parameters), figsize=(4.2 * len(spec.parameters), 3.4), squeeze=False)
    for parameter, ax in zip(spec.parameters, axes[0]):
        points = [(r["values"][parameter.path], r["metrics"][spec.metric], r is best) for r in done
                  if parameter.path in r["values"]]
        numeric = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x, _, _ in points)
        if numeric:
            xs = [x for x, _, _ in points]
            if xs and min(xs) > 0 and (max(xs) / min(xs) >= 10 or (parameter.distribution or ("",))[0] ==
                                       "log_uniform"):
                ax.set_xscale("log")
        else:
            labels = sorted({str(x) for x, _, _ in points})
            ax.set_xticks(range(len(labels)), labels)
            points = [(labels.index(str(x)), y, b) for x, y, b in points]
        ax.scatter([x for x, _, b in points if not b], [y for _, y, b in points if not b], color="#4878a8")
        ax.scatter([x for x, _, b in points if b], [y for _, y, b in points if b], color="#1a9a1a", s=140,
                   marker="*", label="best")
        ax.set_xlabel(parameter.path)
        ax.set_ylabel(spec.metric)
        ax.grid(alpha=0.3)
    save_figure(fig, path)
    plt.close(fig)
    return True


def _validation_curves(results, best, path: Path, plt, save_figure) -> bool:
    curves = [r for r in results if r["history"]]
    if not curves:
        return False
    metrics = [m for m in ("loss", "accuracy") if any(m in row for r in curves for row in r["history"])]
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.2 * len(metrics), 3.8), squeeze=False)
    colours = iter(plt.get_cmap("tab10").colors * (len(curves) // 10 + 1))
    colour = {id(result): _BEST if result is best else next(colours) for result in curves}
    for metric, ax in zip(metrics, axes[0]):
        for result in curves:
            rows = [(row["step"], row[metric]) for row in result["history"] if row.get(metric) is not None]
            if not rows:
                continue
            steps, values = zip(*rows)
            is_best = result is best
            label = ("best: " if is_best else "") + _short(result["values"])
            ax.plot(steps, values, color=colour[id(result)], linewidth=3 if is_best else 1.2,
                    linestyle="--" if result["status"] != "ok" else "-", zorder=3 if is_best else 2,
                    label=label if is_best or len(curves) <= 10 else None)
        ax.set_xlabel("step")
        ax.set_ylabel(f"validation {metric}")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    save_figure(fig, path)
    plt.close(fig)
    return True


# ----- HTML ---------------------------------------------------------------------------------

def render(sweep: Sweep, spec: SweepSpec, results: list[dict[str, Any]], best: dict[str, Any] | None,
           images: dict[str, str], folder: Path) -> str:
    title = f"tfpipe sweep: {Path(spec.file).name} ({spec.path}, {spec.method}, {len(results)} trials)"
    generated = datetime.now(timezone.utc).isoformat(timespec="seconds")
    failed = sum(1 for r in results if r["status"] != "ok")
    parts = [f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
             f"<style>{_STYLE}{_EXTRA_STYLE}</style></head><body><h1>{escape(title)}</h1>",
             f"<p>generated {generated} in <code>{escape(str(folder))}</code>; ranked by "
             f"<b>{escape(spec.metric)}</b> ({'higher' if spec.goal == 'max' else 'lower'} is better); "
             f"{len(results) - failed} trials finished, {failed} failed.</p>"]
    if best is not None:
        parts.append(f"<p>Best: <b>{escape(_describe(best['values']))}</b>, {escape(spec.metric)} "
                     f"{_fmt(best['metrics'][spec.metric])}. <code>best.yaml</code> in this folder reproduces it: "
                     f"<code>luigi --module pipelines {_run_task(spec)} --config best.yaml</code> (nothing "
                     "retrained).</p>")
    parts.append("<h2>Trials</h2>" + _trials_table(spec, results, best, folder))
    parts.extend(_image(label, image) for label, image in images.items())
    parts.append("<h2>Sweep</h2><pre>" + escape(json.dumps(
        {"file": spec.file, "method": spec.method, "metric": spec.metric, "goal": spec.goal,
         "trials": spec.trials_wanted, "seed": spec.seed,
         "parameters": {p.path: p.values if p.distribution is None else dict([p.distribution])
                        for p in spec.parameters}}, indent=2)) + "</pre></body></html>\n")
    return "\n".join(parts)


def _short(values: dict[str, Any]) -> str:
    """'learning_rate 0.003, hidden_units 8': the last part of each key, for legends."""
    return ", ".join(f"{path.rsplit('.', 1)[-1]} {value:.3g}" if isinstance(value, float)
                     else f"{path.rsplit('.', 1)[-1]} {value}" for path, value in values.items())


def _describe(values: dict[str, Any]) -> str:
    return ", ".join(f"{path} {value:.6g}" if isinstance(value, float) else f"{path} {value}"
                     for path, value in values.items())


def _trials_table(spec: SweepSpec, results: list[dict[str, Any]], best: dict[str, Any] | None,
                  folder: Path) -> str:
    names = [p.path for p in spec.parameters]
    metric_names = list(dict.fromkeys(k for r in results for k in r["metrics"] if k != spec.metric))
    head = ["rank", *names, spec.metric, *metric_names, "training time (s)", "report", "status"]
    rows = ["<tr>" + "".join(f"<th>{escape(h)}</th>" for h in head) + "</tr>"]
    for rank, result in enumerate(results, 1):
        css = "best" if result is best else ("failed" if result["status"] != "ok" else "")
        cells = [rank, *(result["values"].get(name, "–") for name in names), result["metrics"].get(spec.metric),
                 *(result["metrics"].get(name) for name in metric_names), result["train_seconds"]]
        html = "".join(map(_cell, cells))
        link = os.path.relpath(Path(result["run"]) / "report.html", folder)
        html += (f'<td><a href="{escape(link)}">report</a></td>' if result["status"] == "ok" else "<td></td>")
        status = "best" if result is best else result["status"]
        if result["status"] != "ok":
            status += f": {result['error']}" + ("" if result["final"] else " (retried by the next run)")
        html += f'<td class="status">{escape(status)}</td>'
        rows.append(f'<tr class="{css}">{html}</tr>')
    return f"<table>{''.join(rows)}</table>"
