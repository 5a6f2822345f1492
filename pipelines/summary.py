"""What a finished run reports: metrics, time and where the artefacts are."""
from __future__ import annotations

import json
from typing import Any

from tasks.evaluate import EvaluateImageModel
from tasks.text_data import corpus_label
from tasks.text_evaluate import EvaluateTextModel
from tasks.text_generate import GenerateText


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


def text_summary(evaluate: EvaluateTextModel, generate: GenerateText) -> dict[str, Any]:
    train = evaluate.requires()
    trained = train.manifest()["record"]
    metrics = evaluate.manifest()["record"]
    samples = json.loads((generate.folder() / "samples.json").read_text("utf-8"))
    return {
        "path": "text",
        "name": f"{evaluate.model} on {corpus_label(evaluate.corpus)}",
        "metrics": {"bits_per_char": metrics["bits_per_char"], "perplexity": metrics["perplexity"],
                    "accuracy": metrics["accuracy"]},
        "steps": trained["final_step"],
        "train_seconds": trained["train_seconds"],
        "chars_per_s": trained.get("chars_per_s"),
        "artefacts": {"model": str(train.folder()), "evaluation": str(evaluate.folder()),
                      "samples": str(generate.folder() / "samples.txt"),
                      "training_curves": str(evaluate.folder() / "training_curves.png"),
                      "tensorboard": str(train.folder() / "tensorboard")},
        "seed_text": samples["seed_text"],
        "samples": [{"temperature": float(s["temperature"]), "text": s["text"]} for s in samples["samples"]],
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
        if run.get("samples"):
            lines += ["", "Seed passage (held-out text):", "", "```text", run["seed_text"], "```"]
            for sample in run["samples"]:
                lines += ["", f"Temperature {sample['temperature']}:", "", "```text",
                          run["seed_text"] + sample["text"], "```"]
    return "\n".join(lines) + "\n"
