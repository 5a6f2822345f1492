"""image.label_smoothing: the training targets mixed with the uniform distribution over the
classes; validation and test losses stay against the true labels."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import manifests, run_luigi


def cross_entropy(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probabilities = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return -(targets * log_probabilities).sum(axis=1)


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_batch_loss_is_the_cross_entropy_against_smoothed_targets(smoothing):
    import tensorflow as tf

    from tasks.image.train import batch_sums

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(64, 10)).astype(np.float32)
    labels = rng.integers(0, 10, 64).astype(np.int32)
    targets = (1 - smoothing) * np.eye(10)[labels] + smoothing / 10
    loss, correct = batch_sums(tf.constant(logits), tf.constant(labels), smoothing)
    np.testing.assert_allclose(float(loss), cross_entropy(logits, targets).sum(), rtol=1e-5)
    assert float(correct) == np.sum(logits.argmax(axis=1) == labels)


@pytest.mark.slow
def test_label_smoothing_is_part_of_what_is_learnt_and_recorded(tiny, workspace, mirror):
    for smoothing in ("0", "0.5"):
        run = run_luigi(["ImageRun", *tiny, "--model", "mlp", "--label-smoothing", smoothing], workspace, mirror)
        assert run.returncode == 0, run
    runs = {}
    for path in manifests(workspace, "train"):
        record = json.loads(path.read_text())["record"]
        history = json.loads((path.parent / "history.json").read_text())
        runs[record["label_smoothing"]] = (record, history)
    assert sorted(runs) == [0.0, 0.5]  # two trainings
    # The tiny set has 4 classes: targets of 0.625 and three of 0.125, whose entropy no
    # prediction scores below; unsmoothed, the same model does.
    floor = -(0.625 * np.log(0.625) + 3 * 0.125 * np.log(0.125))
    assert min(row["loss"] for row in runs[0.5][1]["train"]) >= floor
    assert min(row["loss"] for row in runs[0.0][1]["train"]) < floor
    assert runs[0.0][0]["val_loss"] != runs[0.5][0]["val_loss"]
