"""What a finished run reports: metrics, time and where the artefacts are."""
from __future__ import annotations

import json
from typing import Any

from tasks.basics.graph_speedup import TimeGraphSpeedup
from tasks.basics.linreg import FitLinearRegression
from tasks.image.evaluate import EvaluateImageModel
from tasks.text.download import corpus_label
from tasks.text.evaluate import EvaluateTextModel
from tasks.text.generate import GenerateText


def image_summary(evaluate: EvaluateImageModel) -> dict[str, Any]:
    train = evaluate.requires()
    trained = train.manifest()["record"]
    metrics = evaluate.manifest()["record"]
    data = train.requires().manifest()["record"]
    return {
        "path": "image",
        "name": evaluate.title(),
        "metrics": {"test_accuracy": metrics["accuracy"], "test_loss": metrics["loss"],
                    "val_accuracy": trained.get("val_accuracy")},
        "steps": trained["final_step"],
        "train_seconds": trained["train_seconds"],
        "samples_per_s": trained.get("samples_per_s"),
        "artefacts": {"model": str(train.folder()), "evaluation": str(evaluate.folder()),
                      "confusion_matrix": str(evaluate.folder() / "confusion_matrix.png"),
                      "tensorboard": str(train.folder() / "tensorboard")},
        "images": {"training curves": str(evaluate.folder() / "training_curves.png"),
                   "confusion matrix": str(evaluate.folder() / "confusion_matrix.png")},
        "warnings": list(data.get("warnings") or []),
    }


def text_summary(evaluate: EvaluateTextModel, generate: GenerateText) -> dict[str, Any]:
    train = evaluate.requires()
    trained = train.manifest()["record"]
    metrics = evaluate.manifest()["record"]
    samples = json.loads((generate.folder() / "samples.json").read_text("utf-8"))
    return {
        "path": "text",
        "name": f"{evaluate.model} on {corpus_label(evaluate.corpus, evaluate.corpus_options)}",
        # bits_per_char, perplexity, accuracy: the held-out part (test); val_bits_per_char: the validation part
        "metrics": {"bits_per_char": metrics["bits_per_char"], "perplexity": metrics["perplexity"],
                    "accuracy": metrics["accuracy"], "val_bits_per_char": trained.get("val_bits_per_char")},
        "steps": trained["final_step"],
        "train_seconds": trained["train_seconds"],
        "chars_per_s": trained.get("chars_per_s"),
        "artefacts": {"model": str(train.folder()), "evaluation": str(evaluate.folder()),
                      "samples": str(generate.folder() / "samples.txt"),
                      "training_curves": str(evaluate.folder() / "training_curves.png"),
                      "tensorboard": str(train.folder() / "tensorboard")},
        "images": {"training curves": str(evaluate.folder() / "training_curves.png")},
        "seed_text": samples["seed_text"],
        "samples": [{"temperature": float(s["temperature"]), "text": s["text"]} for s in samples["samples"]],
    }


def linreg_summary(fit: FitLinearRegression) -> dict[str, Any]:
    record = fit.manifest()["record"]
    last = {name: record[name][-1] for name in ("numpy", "tensorflow")}
    rows = [["step", "a (numpy)", "a (tensorflow)", "b (numpy)", "b (tensorflow)"]]
    for n, t in zip(record["numpy"], record["tensorflow"]):
        rows.append([n["step"], round(n["a"], 5), round(t["a"], 5), round(n["b"], 5), round(t["b"], 5)])
    units = [["method", "price per year", "intercept"]]
    units += [[name, round(v["slope_per_year"], 2), round(v["intercept"], 2)]
              for name, v in record["original_units"].items()]
    return {
        "path": "linreg",
        "name": f"linear regression, lr {fit.learning_rate:g}",
        "metrics": {"a_numpy": last["numpy"]["a"], "b_numpy": last["numpy"]["b"],
                    "a_tensorflow": last["tensorflow"]["a"],
                    "b_tensorflow": last["tensorflow"]["b"], "loss": last["numpy"]["loss"],
                    "max_abs_difference": record["max_abs_difference"],
                    "price_per_year": record["original_units"]["numpy"]["slope_per_year"]},
        "steps": last["numpy"]["step"],
        "train_seconds": record["tf_seconds"],
        "artefacts": {"fit": str(fit.folder() / "fit.json"), "plot": record["plot"]},
        "images": {"data and fitted lines, numpy vs TensorFlow": record["plot"]},
        "tables": {f"a and b every {fit.record_every} steps": rows, "fit in original units": units},
    }


def graph_summary(timing: TimeGraphSpeedup) -> dict[str, Any]:
    record = timing.manifest()["record"]
    machine = record["machine"]
    rows = [["model", "layers", "parameters", "eager median (ms)", "graph median (ms)", "speedup",
             "graph first call (ms)"]]
    for name, model in record["models"].items():
        rows.append([name, "Dense " + ", ".join(map(str, model["layers"])), model["parameters"],
                     model["eager_median_ms"], model["graph_median_ms"], model["speedup"],
                     model["graph_first_call_ms"]])
    return {
        "path": "graph",
        "name": f"eager vs tf.function, batch {timing.batch_size}",
        "metrics": {f"{name}_{key}": model[key] for name, model in record["models"].items()
                    for key in ("eager_median_ms", "graph_median_ms", "speedup")},
        "steps": timing.repeats,
        "train_seconds": None,
        "artefacts": {"timings": record["json"], "plot": record["plot"]},
        "images": {"median call time, eager vs graph": record["plot"]},
        "tables": {"call times": rows, "machine": [["", "value"], *([k, v] for k, v in machine.items())]},
    }


def _main_artefact(run: dict[str, Any]) -> str:
    artefacts = run.get("artefacts") or {}
    return str(artefacts.get("model") or next(iter(artefacts.values()), ""))


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "" if value is None else str(value)


def render_markdown(summary: dict[str, Any]) -> str:
    lines = ["| run | metrics | steps | training time | artefacts |", "|---|---|---|---|---|"]
    for run in summary["runs"]:
        metrics = ", ".join(f"{key} {_cell(value)}" for key, value in run["metrics"].items())
        lines.append(f"| {run['name']} | {metrics} | {run.get('steps', '')} | "
                     f"{_cell(run.get('train_seconds'))} s | {_main_artefact(run)} |")
    for run in summary["runs"]:
        lines.append("")
        lines.append(f"{run['name']}:")
        lines.extend(f"  WARNING: {warning}" for warning in run.get("warnings") or [])
        lines.extend(f"  {key}: {path}" for key, path in run["artefacts"].items())
        if run.get("samples"):
            lines += ["", "Seed passage (held-out text):", "", "```text", run["seed_text"], "```"]
            for sample in run["samples"]:
                lines += ["", f"Temperature {sample['temperature']}:", "", "```text",
                          run["seed_text"] + sample["text"], "```"]
    return "\n".join(lines) + "\n"
