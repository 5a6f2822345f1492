"""The image path's tf.data pipelines over real shards: batch order, chunks, resume, validation sets."""
import json
from pathlib import Path

import numpy as np
import pytest

from tasks.image import shards, stream
from tasks.training_loop import chunk_sizes

pytestmark = pytest.mark.slow  # imports TensorFlow

SHAPE = (2, 2, 1)


def write_shards(folder: Path, train: int, val: int) -> dict:
    """Shards whose records carry their own id as the label: train ids 0.., val ids 10000.."""
    size = shards.record_bytes(SHAPE)

    def records(ids):
        return shards.encode(np.zeros((len(ids), *SHAPE), np.uint8), np.asarray(ids))

    writer = shards.RandomWriter(folder, "train", size, shards.shard_assignment(train, 3, seed=1), seed=1)
    writer.add(records(range(train)))
    val_writer = shards.SequentialWriter(folder, "val", size, per_shard=7)
    val_writer.add(records(range(10000, 10000 + val)))
    meta = shards.meta(SHAPE, 2, ["a", "b"], {"train": writer.close(), "val": val_writer.close()})
    (folder / "meta.json").write_text(json.dumps(meta))
    return meta


def ids(chunks) -> np.ndarray:
    """Sample ids of each step: (steps, batch_size)."""
    rows = np.concatenate([chunk.numpy() for chunk in chunks])
    return rows[..., 0].astype(np.int64) + 256 * rows[..., 1].astype(np.int64)


def test_batches_are_a_function_of_the_step_in_chunks_that_never_cross_a_boundary(tmp_path):
    meta = write_shards(tmp_path, train=103, val=20)  # 3 shards; batch 10: 10 steps an epoch, 3 spare

    def plan(start, stop):
        return chunk_sizes(start, stop, (4, 12))

    chunks = list(stream.train_chunks(meta, tmp_path, 10, 7, 0, plan(0, 35)))
    assert [len(chunk) for chunk in chunks] == plan(0, 35) == [4, 4, 4, 4, 4, 4, 4, 4, 3]
    steps = ids(chunks)
    assert steps.shape == (35, 10)
    for epoch in range(3):  # each epoch: every training sample at most once, 3 left out
        seen = steps[10 * epoch:10 * epoch + 10].ravel()
        assert len(set(seen.tolist())) == 100 and set(seen.tolist()) <= set(range(103))
    assert not np.array_equal(steps[:10], steps[10:20])  # a new order every epoch
    for start in (12, 13, 20, 34):  # a resume at any step feeds what the uninterrupted run fed
        resumed = ids(stream.train_chunks(meta, tmp_path, 10, 7, start, plan(start, 35)))
        np.testing.assert_array_equal(resumed, steps[start:], err_msg=f"resumed at {start}")
    other_seed = ids(stream.train_chunks(meta, tmp_path, 10, 8, 0, plan(0, 35)))
    assert not np.array_equal(other_seed, steps)


def test_a_validation_subset_is_a_fixed_seeded_choice_and_the_full_set_reads_every_record(tmp_path):
    meta = write_shards(tmp_path, train=30, val=20)  # val in 3 shards of 7, 7, 6 records
    full = np.concatenate([batch.numpy() for batch in stream.eval_dataset(meta, tmp_path, "val", 8)])
    full_ids = full[:, 0].astype(np.int64) + 256 * full[:, 1].astype(np.int64)
    assert full_ids.tolist() == list(range(10000, 10020))
    subset = stream.records_subset(meta, tmp_path, "val", 5, seed=0)
    subset_ids = subset[:, 0].astype(np.int64) + 256 * subset[:, 1].astype(np.int64)
    assert len(set(subset_ids.tolist())) == 5 and set(subset_ids.tolist()) <= set(full_ids.tolist())
    assert np.array_equal(subset, stream.records_subset(meta, tmp_path, "val", 5, seed=0))
    assert not np.array_equal(subset, stream.records_subset(meta, tmp_path, "val", 5, seed=1))
    assert stream.records_subset(meta, tmp_path, "val", 20, seed=0) is None  # the whole set is no subset
