"""Test-time augmentation (image.test_augment): with mirror, validation, the exported model and so
the test figure predict from the mean of the logits of each image and its mirror image."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tasks.image.test_time import resolved_test_augment
from tests.conftest import manifests, run_luigi


@pytest.mark.parametrize("choice, augment, expected", [
    ("auto", "mirror", "mirror"),  # training mirrors: the mirror image is known to keep the label
    ("auto", "mirror+shift", "mirror"),
    ("auto", "shift", "none"),
    ("auto", "none", "none"),  # digits: a mirrored 2 is not a 2
    ("mirror", "none", "mirror"),  # the user's choice wins
    ("none", "mirror", "none"),
])
def test_auto_predicts_mirrored_only_where_training_mirrors(choice, augment, expected):
    assert resolved_test_augment(choice, augment) == expected


def trained_folder(workspace: Path, test_augment: str) -> tuple[Path, dict]:
    for path in manifests(workspace, "train"):
        record = json.loads(path.read_text())["record"]
        if record["test_augment"] == test_augment:
            return path.parent, record
    raise AssertionError(f"no training with test_augment {test_augment}")


def served_logits(folder: Path, images: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    loaded = tf.saved_model.load(str(folder / "saved_model"))  # kept alive: serve needs its variables
    return loaded.serve(tf.constant(images)).numpy()


@pytest.mark.slow
def test_the_exported_model_and_validation_average_the_image_and_its_mirror(tiny, workspace, mirror):
    small_cnn = ["--model", "cnn", "--model-params", '{"filters1": 4, "filters2": 4, "dense_units": 16}']
    for test_augment in ("auto", "none"):  # auto: mirror, since training mirrors
        run = run_luigi(["ImageRun", *tiny, *small_cnn, "--augment", "mirror", "--test-augment", test_augment],
                        workspace, mirror)
        assert run.returncode == 0, run

    import keras

    mirrored_folder, record = trained_folder(workspace, "mirror")
    plain_folder, _ = trained_folder(workspace, "none")
    saved = keras.models.load_model(mirrored_folder / "model.keras")
    inner = saved.get_layer("cnn")  # the trained model, inside the averaging one
    images = np.random.default_rng(0).random((8, 12, 12, 1), dtype=np.float32)  # not symmetric
    expected = (np.asarray(inner(images)) + np.asarray(inner(images[:, :, ::-1]))) / 2
    np.testing.assert_allclose(served_logits(mirrored_folder, images), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(saved(images)), expected, rtol=1e-5, atol=1e-5)
    assert np.abs(expected - np.asarray(inner(images))).max() > 1e-3  # the mirror does change the logits

    plain = keras.models.load_model(plain_folder / "model.keras")
    assert plain.name == "cnn"
    np.testing.assert_allclose(served_logits(plain_folder, images), np.asarray(plain(images)), rtol=1e-5, atol=1e-5)

    # The last validation point is the exported model's score on the whole validation set.
    from tasks.image import stream

    data = next(path.parent for path in manifests(workspace, "preprocess"))
    meta = json.loads((data / "meta.json").read_text())
    losses, hits = [], []
    for records in stream.eval_dataset(meta, data, "val", 1000):
        x, y = stream.decode(records, meta["input_shape"])
        logits, labels = served_logits(mirrored_folder, x.numpy()).astype(np.float64), y.numpy()
        log_p = logits - logits.max(-1, keepdims=True)
        log_p -= np.log(np.exp(log_p).sum(-1, keepdims=True))
        losses.extend(-log_p[np.arange(len(labels)), labels])
        hits.extend(logits.argmax(-1) == labels)
    assert record["val_loss"] == pytest.approx(np.mean(losses), rel=1e-4)
    assert record["val_accuracy"] == pytest.approx(np.mean(hits))
    assert len(manifests(workspace, "evaluate")) == 2  # each has its own test figure
