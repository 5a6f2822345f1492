"""Classification metrics from logits, in numpy (pure functions)."""
from __future__ import annotations

import numpy as np


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def classification_metrics(logits: np.ndarray, labels: np.ndarray, num_classes: int) -> dict:
    """Mean cross-entropy, accuracy, per-class accuracy and confusion matrix (rows: true)."""
    labels = labels.astype(np.int64)
    loss = float(-log_softmax(logits.astype(np.float64))[np.arange(len(labels)), labels].mean())
    predicted = logits.argmax(axis=-1)
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    support = confusion.sum(axis=1)
    per_class = np.divide(np.diag(confusion), support, out=np.full(num_classes, np.nan), where=support > 0)
    return {
        "loss": loss,
        "accuracy": float((predicted == labels).mean()),
        "per_class_accuracy": [None if np.isnan(v) else float(v) for v in per_class],
        "confusion_matrix": confusion.tolist(),
        "count": int(len(labels)),
    }
