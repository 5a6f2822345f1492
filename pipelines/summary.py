"""What a finished run reports: metrics, time and where the artefacts are."""
from __future__ import annotations

from typing import Any

from tasks.evaluate import EvaluateImageModel


def image_summary(evaluate: EvaluateImageModel) -> dict[str, Any]:
    train = evaluate.requires()
    trained = train.manifest()["record"]
    metrics = evaluate.manifest()["record"]
    return {
        "path": "image",
        "name": f"{evaluate.model} on {evaluate.dataset}",
        "metrics": {"test_accuracy": metrics["accuracy"], "test_loss": metrics["loss"],
                    "val_accuracy": trained.get("val_accuracy")},
        "steps": trained["final_step"],
        "train_seconds": trained["train_seconds"],
        "samples_per_s": trained.get("samples_per_s"),
        "artefacts": {"model": str(train.folder()), "evaluation": str(evaluate.folder()),
                      "confusion_matrix": str(evaluate.folder() / "confusion_matrix.png"),
                      "tensorboard": str(train.folder() / "tensorboard")},
    }


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "" if value is None else str(value)


def render_markdown(summary: dict[str, Any]) -> str:
    lines = ["| run | metrics | steps | training time | artefacts |", "|---|---|---|---|---|"]
    for run in summary["runs"]:
        metrics = ", ".join(f"{key} {_cell(value)}" for key, value in run["metrics"].items())
        lines.append(f"| {run['name']} | {metrics} | {run.get('steps', '')} | "
                     f"{_cell(run.get('train_seconds'))} s | {run['artefacts']['model']} |")
    for run in summary["runs"]:
        lines.append("")
        lines.append(f"{run['name']}:")
        lines.extend(f"  {key}: {path}" for key, path in run["artefacts"].items())
    return "\n".join(lines) + "\n"
