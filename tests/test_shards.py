"""Shards: record layout, seeded splits and assignment, and the preprocess stage (no TensorFlow)."""
import json
import sys

import luigi
import numpy as np
import pytest

from plugins.errors import TfpipeError
from tasks.image import shards
from tasks.image.preprocess import PreprocessImages
from tasks.integrity import verify
from tests.conftest import make_image_set, write_idx_folder


def test_records_round_trip_with_labels_above_255():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (7, 3, 4, 2), dtype=np.uint8)
    labels = np.array([0, 1, 255, 256, 1000, 65535, 3])
    records = shards.encode(images, labels)
    assert records.shape == (7, shards.record_bytes((3, 4, 2))) == (7, 26)
    assert records[3, :2].tolist() == [0, 1]  # little-endian uint16 label first
    x, y = shards.decode(records.tobytes(), (3, 4, 2))
    assert np.array_equal(x, images) and y.tolist() == labels.tolist()


def test_split_and_assignment_are_seeded_and_balanced():
    assert shards.split_counts(400, 0.125) == (350, 50)
    assert shards.split_counts(10, 0.05) == (9, 1)  # half up, not to even
    mask = shards.validation_mask(1000, 0.1, seed=3)
    assert mask.dtype == bool and mask.sum() == 100
    assert np.array_equal(mask, shards.validation_mask(1000, 0.1, seed=3))
    assert not np.array_equal(mask, shards.validation_mask(1000, 0.1, seed=4))
    assignment = shards.shard_assignment(1003, 4, seed=0)
    assert sorted(np.bincount(assignment).tolist()) == [250, 251, 251, 251]
    assert assignment.dtype == np.uint16 and len(set(assignment[:20].tolist())) > 1  # not in blocks


def test_writers_put_every_record_in_exactly_one_shuffled_shard(tmp_path):
    size, count = shards.record_bytes((2, 2, 1)), 1000
    records = np.zeros((count, size), dtype=np.uint8)
    records[:, :2] = np.arange(count, dtype="<u2").view(np.uint8).reshape(count, 2)  # id as label
    assignment = shards.shard_assignment(count, 3, 7)
    writer = shards.RandomWriter(tmp_path, "train", size, assignment, seed=7)
    for start in range(0, count, 128):  # batches in source order
        writer.add(records[start:start + 128])
    files = writer.close()
    assert [f["file"] for f in files] == ["train-00000.bin", "train-00001.bin", "train-00002.bin"]
    ids = [shards.decode((tmp_path / f["file"]).read_bytes(), (2, 2, 1))[1] for f in files]
    assert sorted(np.concatenate(ids).tolist()) == list(range(count))
    assert all(np.any(np.diff(part) < 0) for part in ids)  # shuffled, not in source order
    assert not list(tmp_path.glob(".*"))  # no partial files left

    sequential = shards.SequentialWriter(tmp_path, "test", size, per_shard=300)
    sequential.add(records[:500])
    sequential.add(records[500:])
    test_files = sequential.close()
    assert [f["records"] for f in test_files] == [300, 300, 300, 100]
    data = b"".join((tmp_path / f["file"]).read_bytes() for f in test_files)
    assert shards.decode(data, (2, 2, 1))[1].tolist() == list(range(count))


def task(tmp_path, folder, fraction, seed=0):
    return PreprocessImages(workspace=str(tmp_path / "ws"), dataset="arrays",
                            dataset_options={"path": str(folder)}, validation_fraction=fraction,
                            split_seed=seed)


def test_check_settings_refuses_a_split_without_validation_or_a_batch(tmp_path):
    folder = write_idx_folder(tmp_path / "data" / "tiny", make_image_set(num_train=30, num_test=5))
    task(tmp_path, folder, 0.2).check_settings(batch_size=24)  # 24 train, 6 val: fine
    with pytest.raises(TfpipeError, match=r"image.validation_fraction=0.01 of the 30 training "
                                          r"samples of arrays-tiny holds out 0.30 samples, which "
                                          r"rounds to none"):
        task(tmp_path, folder, 0.01).check_settings(batch_size=4)
    with pytest.raises(TfpipeError, match=r"image.batch_size=25 is larger than the 24 training "
                                          r"samples of arrays-tiny left after holding out 6 of 30"):
        task(tmp_path, folder, 0.2).check_settings(batch_size=25)
    with pytest.raises(TfpipeError, match=r"image.validation_fraction=1.5 must be between 0 and 1"):
        task(tmp_path, folder, 1.5).check_settings(batch_size=1)


def test_check_settings_costs_no_numpy(tmp_path):
    import subprocess

    folder = write_idx_folder(tmp_path / "data" / "tiny", make_image_set(num_train=30, num_test=5))
    code = ("import sys, json\nfrom tasks.image.preprocess import PreprocessImages\n"
            f"t = PreprocessImages(workspace={str(tmp_path / 'ws')!r}, dataset='arrays', "
            f"dataset_options={{'path': {str(folder)!r}}}, validation_fraction=0.2, split_seed=0)\n"
            "t.check_settings(24)\nprint(json.dumps('numpy' in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) is False


def test_preprocess_writes_shards_that_hold_exactly_the_dataset(tmp_path):
    data = make_image_set(num_train=230, num_test=41, num_classes=5)
    folder = write_idx_folder(tmp_path / "data" / "tiny", data)
    preprocess = task(tmp_path, folder, 0.1, seed=5)
    # Its work() runs in a subprocess, as under the `luigi` command.
    assert luigi.build([preprocess], local_scheduler=True, log_level="WARNING")
    meta = preprocess.meta()
    assert meta["counts"] == {"train": 207, "val": 23, "test": 41}
    assert meta["input_shape"] == [12, 12, 1] and meta["num_classes"] == 5
    assert meta["record"]["bytes"] == 2 + 144

    def read(split):
        paths = shards.shard_paths(preprocess.folder(), meta, split)
        data_ = b"".join(p.read_bytes() for p in paths)
        return shards.decode(data_, meta["input_shape"])

    (xt, yt), (xv, yv), (xs, ys) = read("train"), read("val"), read("test")
    # The test split keeps its order.
    assert np.array_equal(xs[..., 0], data["x_test"]) and np.array_equal(ys, data["y_test"])
    # train + val is the training set, each sample once; val is the seeded mask.
    held = shards.validation_mask(230, 0.1, 5)
    assert np.array_equal(xv[..., 0], data["x_train"][held])
    assert np.array_equal(yv, data["y_train"][held])
    def key(x, y):
        return sorted(zip(y.tolist(), (row.tobytes() for row in x)))

    assert key(xt[..., 0], yt) == key(data["x_train"][~held], data["y_train"][~held])

    # A changed shard is refused before training reads it.
    first = preprocess.folder() / meta["shards"]["train"][0]["file"]
    first.write_bytes(first.read_bytes()[:-1] + b"\xff")
    with pytest.raises(TfpipeError, match=r"train-00000.bin: sha256 differs from the recorded"):
        verify(preprocess.folder(), preprocess.hash_cache())
