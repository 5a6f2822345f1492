"""Image augmentation (image.augment): half of each training batch mirrored left to right, each
image shifted by up to 2 pixels, or both, drawn from (seed, step); auto mirrors only where the
dataset plugin says a mirror keeps the label."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tasks.image.shards import LABEL_BYTES
from tasks.image.train import resolved_augment
from tests.conftest import manifests, run_luigi


@pytest.mark.parametrize("choice, dataset, expected", [
    ("auto", "fashion_mnist", "mirror"),  # MIRROR_KEEPS_LABEL = True: clothing
    ("auto", "cifar10", "mirror"),
    ("auto", "mnist", "none"),  # a mirrored 2 or 7 is not a digit
    ("auto", "arrays", "none"),  # any IDX folder: nothing is known of its labels
    ("mirror", "mnist", "mirror"),  # the user's choice wins
    ("none", "fashion_mnist", "none"),
    ("mirror+shift", "mnist", "mirror+shift"),
])
def test_auto_mirrors_only_where_the_dataset_plugin_says_a_mirror_keeps_the_label(choice, dataset, expected):
    assert resolved_augment(choice, dataset) == expected


def test_mirror_half_flips_about_half_the_images_as_a_function_of_seed_and_step():
    import tensorflow as tf

    from tasks.image.stream import mirror_half

    shape = [4, 5, 1]
    records = np.random.default_rng(0).integers(0, 256, (400, LABEL_BYTES + 20), dtype=np.uint8)
    out = mirror_half(tf.constant(records), shape, 3, tf.constant(7, tf.int64)).numpy()

    pixels = records[:, LABEL_BYTES:].reshape(-1, *shape)
    mirrored = pixels[:, :, ::-1, :].reshape(len(records), -1)
    flipped = np.all(out[:, LABEL_BYTES:] == mirrored, axis=1)
    kept = np.all(out[:, LABEL_BYTES:] == records[:, LABEL_BYTES:], axis=1)
    assert np.all(flipped | kept)  # each image whole, as it was or mirrored
    assert np.array_equal(out[:, :LABEL_BYTES], records[:, :LABEL_BYTES])  # labels untouched
    assert 150 < flipped.sum() < 250
    again = mirror_half(tf.constant(records), shape, 3, tf.constant(7, tf.int64)).numpy()
    assert np.array_equal(again, out)  # the same step of the same run: the same batch
    other = mirror_half(tf.constant(records), shape, 3, tf.constant(8, tf.int64)).numpy()
    assert not np.array_equal(other, out)


def test_shift_each_moves_every_image_by_at_most_two_pixels_as_a_function_of_seed_and_step():
    import tensorflow as tf

    from tasks.image.stream import SHIFT_PIXELS, shift_each

    shape, most = [6, 7, 1], SHIFT_PIXELS
    rng = np.random.default_rng(0)
    records = rng.integers(1, 256, (300, LABEL_BYTES + 42), dtype=np.uint8)  # no zero pixel: moves show
    out = shift_each(tf.constant(records), shape, 3, tf.constant(7, tf.int64)).numpy()

    padded = np.pad(records[:, LABEL_BYTES:].reshape(-1, *shape), [(0, 0), (most, most), (most, most), (0, 0)])
    moves = []
    for image, got in zip(padded, out[:, LABEL_BYTES:].reshape(-1, *shape)):
        found = [(dy, dx) for dy in range(2 * most + 1) for dx in range(2 * most + 1)
                 if np.array_equal(image[dy:dy + shape[0], dx:dx + shape[1]], got)]
        assert len(found) == 1  # the image moved whole, zeros filling what came in
        moves.append(found[0])
    assert set(moves) == {(dy, dx) for dy in range(5) for dx in range(5)}  # every move up to 2 pixels drawn
    assert np.array_equal(out[:, :LABEL_BYTES], records[:, :LABEL_BYTES])  # labels untouched
    again = shift_each(tf.constant(records), shape, 3, tf.constant(7, tf.int64)).numpy()
    assert np.array_equal(again, out)  # the same step of the same run: the same batch
    other = shift_each(tf.constant(records), shape, 3, tf.constant(8, tf.int64)).numpy()
    assert not np.array_equal(other, out)


def test_mirror_plus_shift_applies_both_and_none_applies_nothing():
    import tensorflow as tf

    from tasks.image.stream import augmentation, mirror_half, shift_each

    shape = [4, 5, 1]
    records = tf.constant(np.random.default_rng(1).integers(0, 256, (50, LABEL_BYTES + 20), dtype=np.uint8))
    step = tf.constant(4, tf.int64)
    both = augmentation("mirror+shift", shape, 9)(records, step).numpy()
    expected = shift_each(mirror_half(records, shape, 9, step), shape, 9, step).numpy()
    assert np.array_equal(both, expected)
    assert augmentation("none", shape, 9) is None


@pytest.mark.parametrize("augment", ["mirror", "shift"])
def test_xla_and_tensorflow_kernels_augment_alike(augment):
    """jit_compile changes speed, not batches: a run resumed with XLA on sees what it would off."""
    import tensorflow as tf

    from tasks.image.stream import augmentation

    shape = [6, 7, 1]
    records = tf.constant(np.random.default_rng(2).integers(1, 256, (500, LABEL_BYTES + 42), dtype=np.uint8))
    prepare = augmentation(augment, shape, 5)
    plain = tf.function(prepare, jit_compile=False)
    xla = tf.function(prepare, jit_compile=True)
    for step in (0, 3, 4000):
        step = tf.constant(step, tf.int64)
        expected = plain(records, step).numpy()
        assert not np.array_equal(expected, records.numpy())
        np.testing.assert_array_equal(xla(records, step).numpy(), expected)


@pytest.mark.slow
def test_each_augmentation_is_part_of_what_is_learnt_and_recorded(tiny, workspace, mirror):
    small_cnn = ["--model", "cnn", "--model-params", '{"filters1": 4, "filters2": 4, "dense_units": 16}']
    for augment in ("none", "mirror", "shift"):
        run = run_luigi(["ImageRun", *tiny, *small_cnn, "--augment", augment], workspace, mirror)
        assert run.returncode == 0, run
    records = [json.loads(path.read_text())["record"] for path in manifests(workspace, "train")]
    assert sorted(record["augment"] for record in records) == ["mirror", "none", "shift"]  # three trainings
    assert len({record["val_loss"] for record in records}) == 3
