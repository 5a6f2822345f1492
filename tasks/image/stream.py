"""tf.data pipelines over the shards (imported only in TensorFlow workers).

Training batches are a pure function of (seed, step): epoch e reads the
training shards in an order drawn from (seed, e), interleaves them
deterministically and shuffles records through a buffer seeded by (seed, e);
the last incomplete batch of an epoch is dropped. A run resumed at step s
rebuilds epoch s // steps_per_epoch and skips s % steps_per_epoch batches, so it
feeds exactly what an uninterrupted run feeds. Records stay uint8 until the
compiled step decodes and scales them (`decode`).
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from plugins.errors import TfpipeError
from tasks.image.shards import LABEL_BYTES, shard_paths

SHUFFLE_BYTES = 64 << 20  # memory the shuffle buffer may hold
MAX_SHUFFLE = 20_000  # records
CYCLE = 8  # shards read at once


def steps_per_epoch(count: int, batch_size: int) -> int:
    if batch_size > count:
        raise TfpipeError(f"image.batch_size={batch_size} is larger than the training set ({count} "
                          "samples); lower image.batch_size or image.validation_fraction")
    return count // batch_size


def shuffle_buffer(count: int, record_size: int) -> int:
    return max(1, min(count, MAX_SHUFFLE, SHUFFLE_BYTES // record_size))


def epoch_plan(seed: int, epoch: int, shards: int) -> tuple[list[int], int]:
    """(order of the training shards, shuffle seed) of one epoch."""
    import numpy as np

    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(shards).tolist()
    return order, int(rng.integers(1, 2**31 - 1))


def _records(tf, files: list[str], record_size: int, cycle: int):
    files_ds = tf.data.Dataset.from_tensor_slices(files)
    return files_ds.interleave(
        lambda path: tf.data.FixedLengthRecordDataset(path, record_size, buffer_size=1 << 18),
        cycle_length=cycle, block_length=1, num_parallel_calls=cycle, deterministic=True)


def _as_bytes(tf, record_size: int):
    return lambda records: tf.reshape(tf.io.decode_raw(records, tf.uint8), [-1, record_size])


def epoch_dataset(meta: dict[str, Any], folder: Path, batch_size: int, seed: int, epoch: int):
    """uint8 (batch_size, record_bytes) batches of one epoch."""
    import tensorflow as tf

    paths = [str(p) for p in shard_paths(folder, meta, "train")]
    order, shuffle_seed = epoch_plan(seed, epoch, len(paths))
    size = meta["record"]["bytes"]
    dataset = _records(tf, [paths[i] for i in order], size, min(CYCLE, len(paths)))
    dataset = dataset.shuffle(shuffle_buffer(meta["counts"]["train"], size), seed=shuffle_seed,
                              reshuffle_each_iteration=False)
    dataset = dataset.batch(batch_size, drop_remainder=True)
    return dataset.map(_as_bytes(tf, size), deterministic=True)


def train_batches(meta: dict[str, Any], folder: Path, batch_size: int, seed: int, start: int,
                  stop: int) -> Iterator[Any]:
    """The batches of steps start..stop-1 (uint8 records, decoded by `decode` in the step)."""
    import tensorflow as tf

    per_epoch = steps_per_epoch(meta["counts"]["train"], batch_size)
    step = start
    while step < stop:
        epoch, offset = divmod(step, per_epoch)
        take = min(per_epoch - offset, stop - step)
        dataset = epoch_dataset(meta, folder, batch_size, seed, epoch).skip(offset).take(take)
        produced = 0
        for batch in dataset.prefetch(tf.data.AUTOTUNE):
            produced += 1
            yield batch
        if produced != take:
            raise TfpipeError(f"epoch {epoch} gave {produced} batches, {take} expected; the shards "
                              f"in {folder} do not match meta.json: delete that folder and rerun")
        step += take


def eval_dataset(meta: dict[str, Any], folder: Path, split: str, batch_size: int):
    """uint8 (<= batch_size, record_bytes) batches of a split, in shard order."""
    import tensorflow as tf

    size = meta["record"]["bytes"]
    paths = [str(p) for p in shard_paths(folder, meta, split)]
    dataset = tf.data.FixedLengthRecordDataset(paths, size, buffer_size=1 << 18)
    return dataset.batch(batch_size).map(_as_bytes(tf, size)).prefetch(tf.data.AUTOTUNE)


def decode(records, shape: list[int]):
    """uint8 records (n, record_bytes) -> (float32 images in [0, 1] (n, *shape), int32 labels), in
    the graph."""
    import tensorflow as tf

    labels = tf.cast(records[:, 0], tf.int32) + 256 * tf.cast(records[:, 1], tf.int32)
    images = tf.cast(records[:, LABEL_BYTES:], tf.float32) / 255.0
    return tf.reshape(images, [-1, *shape]), labels
