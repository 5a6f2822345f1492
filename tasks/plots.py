"""PNG plots of run results (matplotlib, headless)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path) -> None:
    """Write through a temporary name so a crash never leaves a half PNG."""
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    tmp.replace(path)


def confusion_matrix_png(confusion: Sequence[Sequence[int]], class_names: Sequence[str], path: Path,
                         title: str) -> None:
    plt = _pyplot()
    matrix = np.asarray(confusion)
    size = max(4.0, 0.55 * len(class_names) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    threshold = matrix.max() / 2 if matrix.size else 0
    for (row, col), value in np.ndenumerate(matrix):
        ax.text(col, row, str(value), ha="center", va="center", fontsize=7,
                color="white" if value > threshold else "black")
    save_figure(fig, path)
    plt.close(fig)


def history_png(history: dict, path: Path, title: str) -> None:
    """Loss and accuracy curves, training and validation, against the step."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for metric, ax in zip(("loss", "accuracy"), axes):
        for split, rows in history.items():
            points = [(row["step"], row[metric]) for row in rows if row.get(metric) is not None]
            if points:
                steps, values = zip(*points)
                ax.plot(steps, values, label=split, marker="o" if split == "validation" else None,
                        markersize=3)
        ax.set_xlabel("step")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    save_figure(fig, path)
    plt.close(fig)
