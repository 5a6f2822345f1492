"""tf.data pipelines over the shards (imported only in TensorFlow workers).

Training batches are a pure function of (seed, step): epoch e reads the
training shards whole, in an order drawn from (seed, e), and permutes the
records of each shard with a seed drawn from (seed, e) and the shard's place;
consecutive records make the batches, and the records that do not fill a last
batch are dropped (each epoch has steps_per_epoch batches). Each training shard
is already a random subset of the training set (tasks.image.shards), so a
permuted shard is as good a source of batches as the whole set, and memory holds
a shard or two (at most SHARD_BYTES each) instead of a shuffle buffer. A run
resumed at step s starts from epoch s // steps_per_epoch and skips
s % steps_per_epoch batches, so it feeds exactly what an uninterrupted run
feeds. One tf.data pipeline reads every epoch of a run, so reading runs ahead
across epochs too; it delivers chunks of consecutive steps, one per compiled
call (tasks.training_loop). Records stay uint8 until the compiled step decodes
and scales them (`decode`).

Whole shards are read with one op each and cut into batches with slices. Record
by record (a record reader, an interleave and a shuffle buffer) tf.data spent about
0.9 ms of CPU per batch of 50 on this 2-core machine, as much as an MLP step; this
way it spends about 0.05 ms.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from plugins.errors import TfpipeError
from tasks.image.shards import LABEL_BYTES, shard_paths


def steps_per_epoch(count: int, batch_size: int) -> int:
    if batch_size > count:
        raise TfpipeError(f"image.batch_size={batch_size} is larger than the training set ({count} "
                          "samples); lower image.batch_size or image.validation_fraction")
    return count // batch_size


def shuffle_buffer(meta: dict[str, Any]) -> int:
    """Records permuted together: those of the largest training shard."""
    return max(shard["records"] for shard in meta["shards"]["train"])


def epoch_plan(seed: int, epoch: int, shards: int) -> tuple[list[int], int]:
    """(order of the training shards, shuffle seed) of one epoch."""
    import numpy as np

    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(shards).tolist()
    return order, int(rng.integers(1, 2**31 - 1))


def _shards(tf, paths: list[str], record_size: int):
    """uint8 (records, record_size) tensors, one per file, read whole."""
    return tf.data.Dataset.from_tensor_slices(paths).map(
        lambda path: tf.reshape(tf.io.decode_raw(tf.io.read_file(path), tf.uint8), [-1, record_size]))


def epoch_blocks(meta: dict[str, Any], folder: Path, batch_size: int, seed: int,
                 epochs: range) -> list[tuple[str, int, int, int]]:
    """What each epoch reads, block by block: (shard path, permutation seed, place in the
    epoch, records kept). The last blocks of an epoch drop the records that do not fill a
    whole batch."""
    paths = [str(p) for p in shard_paths(folder, meta, "train")]
    counts = [shard["records"] for shard in meta["shards"]["train"]]
    spare = meta["counts"]["train"] - steps_per_epoch(meta["counts"]["train"], batch_size) * batch_size
    blocks = []
    for epoch in epochs:
        order, shuffle_seed = epoch_plan(seed, epoch, len(paths))
        keep, drop = [counts[index] for index in order], spare
        for place in reversed(range(len(order))):
            cut = min(drop, keep[place])
            keep[place], drop = keep[place] - cut, drop - cut
        blocks += [(paths[index], shuffle_seed, place, kept)
                   for place, (index, kept) in enumerate(zip(order, keep)) if kept]
    return blocks


def train_chunks(meta: dict[str, Any], folder: Path, batch_size: int, seed: int, start: int,
                 sizes: list[int]) -> Iterator[Any]:
    """The batches of steps start, start+1, ... as uint8 chunks (steps, batch_size,
    record_bytes) of `sizes` steps each. Records are decoded by `decode` in the step."""
    import tensorflow as tf

    if not sizes:
        return
    size = meta["record"]["bytes"]
    per_epoch = steps_per_epoch(meta["counts"]["train"], batch_size)
    stop = start + sum(sizes)
    first, offset = divmod(start, per_epoch)
    files, seeds, places, keep = zip(*epoch_blocks(meta, folder, batch_size, seed, range(first, -(-stop // per_epoch))))

    def block(path, shuffle_seed, place, kept):
        records = tf.reshape(tf.io.decode_raw(tf.io.read_file(path), tf.uint8), [-1, size])
        keys = tf.random.stateless_uniform(tf.shape(records)[:1], seed=tf.stack([shuffle_seed, place]))
        return tf.gather(records, tf.argsort(keys)[:kept])

    blocks = tf.data.Dataset.from_tensor_slices((list(files), tf.constant(seeds, tf.int64),
                                                 tf.constant(places, tf.int64), tf.constant(keep, tf.int64)))
    blocks = blocks.map(block).prefetch(1)  # the next shard is read while this one is consumed
    # Records per chunk; a first slice holds the batches a resumed run skips.
    rows = [offset * batch_size] * (offset > 0) + [steps * batch_size for steps in sizes]
    chunks = blocks.rebatch(tf.constant(rows, tf.int64), drop_remainder=True)
    chunks = chunks.skip(int(offset > 0)).take(len(sizes))
    produced = 0
    for chunk in chunks.map(lambda records: tf.reshape(records, [-1, batch_size, size])).prefetch(2):
        produced += int(chunk.shape[0])
        yield chunk
    if produced != stop - start:
        raise TfpipeError(f"the training shards gave {produced} batches from step {start}, {stop - start} "
                          f"expected; the shards in {folder} do not match meta.json: delete that folder and rerun")


def eval_dataset(meta: dict[str, Any], folder: Path, split: str, batch_size: int):
    """uint8 (<= batch_size, record_bytes) batches of a split, in shard order."""
    import tensorflow as tf

    paths = [str(p) for p in shard_paths(folder, meta, split)]
    return _shards(tf, paths, meta["record"]["bytes"]).rebatch(batch_size).prefetch(tf.data.AUTOTUNE)


def records_subset(meta: dict[str, Any], folder: Path, split: str, count: int, seed: int):
    """A seeded choice of `count` records of a split (uint8 numpy rows, in split order); None
    when the split has no more than `count`. Reads one shard at a time."""
    import numpy as np

    total = meta["counts"][split]
    if total <= count:
        return None
    chosen = np.zeros(total, bool)
    chosen[np.random.default_rng(seed).choice(total, size=count, replace=False)] = True
    rows, start = [], 0
    for path in shard_paths(folder, meta, split):
        records = np.fromfile(path, np.uint8).reshape(-1, meta["record"]["bytes"])
        rows.append(records[chosen[start:start + len(records)]])
        start += len(records)
    return np.concatenate(rows)


def decode(records, shape: list[int]):
    """uint8 records (n, record_bytes) -> (float32 images in [0, 1] (n, *shape), int32 labels), in
    the graph."""
    import tensorflow as tf

    labels = tf.cast(records[:, 0], tf.int32) + 256 * tf.cast(records[:, 1], tf.int32)
    images = tf.cast(records[:, LABEL_BYTES:], tf.float32) / 255.0
    return tf.reshape(images, [-1, *shape]), labels


def mirror_half(records, shape: list[int], seed: int, step):
    """uint8 records (n, record_bytes) with about half their images mirrored left to right, which
    half drawn from (seed, step) alone: a resumed run, and any number of replicas, see the same
    batch, XLA or not (tasks.random_bits). For data whose labels a mirror keeps (clothing,
    CIFAR-10), never digits."""
    import tensorflow as tf

    from tasks.random_bits import philox_bits

    flip = philox_bits(seed, step, tf.shape(records)[:1]) < 0  # the sign bit: one chance in two
    pixels = records[:, LABEL_BYTES:]
    mirrored = tf.reshape(tf.reverse(tf.reshape(pixels, [-1, *shape]), axis=[2]), tf.shape(pixels))
    return tf.concat([records[:, :LABEL_BYTES], tf.where(flip[:, None], mirrored, pixels)], axis=1)


SHIFT_PIXELS = 2  # the most an image moves each way: 2 of 28 pixels keeps a digit or a garment whole


def shift_each(records, shape: list[int], seed: int, step, most: int = SHIFT_PIXELS):
    """uint8 records (n, record_bytes) with each image moved by up to `most` pixels up or down and
    left or right (what moves out is lost, what comes in is 0), each image's move drawn from
    (seed, step) alone, as mirror_half's flips are, but independently of them."""
    import tensorflow as tf

    from tasks.random_bits import philox_bits

    side = 2 * most + 1
    # The step -1 - step is never a mirror draw's (step >= 0).
    bits = philox_bits(seed, tf.bitwise.invert(tf.cast(step, tf.int64)), tf.shape(records)[:1])
    move = tf.bitwise.bitwise_and(bits, 0x7FFFFFFF) % (side * side)  # one of side**2 moves
    offsets = tf.stack([move // side, move % side], axis=1)  # (n, 2): first padded row and column kept
    pixels = records[:, LABEL_BYTES:]
    padded = tf.pad(tf.reshape(pixels, [-1, *shape]), [[0, 0], [most, most], [most, most], [0, 0]])
    rows = offsets[:, :1] + tf.range(shape[0])[None]  # (n, height): the padded rows each image keeps
    columns = offsets[:, 1:] + tf.range(shape[1])[None]
    moved = tf.gather(tf.gather(padded, rows, axis=1, batch_dims=1), columns, axis=2, batch_dims=1)
    return tf.concat([records[:, :LABEL_BYTES], tf.reshape(moved, tf.shape(pixels))], axis=1)


def augmentation(augment: str, shape: list[int], seed: int):
    """prepare(records, step) for the training step of an image.augment value (after auto), or None."""
    kinds = {"mirror": mirror_half, "shift": shift_each}
    chosen = [kinds[kind] for kind in augment.split("+") if kind != "none"]
    if not chosen:
        return None

    def prepare(records, step):
        for transform in chosen:
            records = transform(records, shape, seed, step)
        return records
    return prepare
