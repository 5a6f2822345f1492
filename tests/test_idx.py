import gzip

import numpy as np
import pytest

from plugins.datasets import idx
from plugins.datasets.catalog import local_layout
from plugins.errors import TfpipeError
from tasks.image.arrays import read_arrays, scale_images, split_validation, validation_count
from tests.conftest import make_image_set, write_idx_folder


def test_encode_decode_round_trip_plain_and_gzip(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "a").write_bytes(idx.encode(images))
    (tmp_path / "b.gz").write_bytes(gzip.compress(idx.encode(images)))
    assert np.array_equal(idx.read(tmp_path / "a"), images)
    assert np.array_equal(idx.read(tmp_path / "b.gz"), images)


def test_bad_magic_names_the_file(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(b"\x01\x02\x08\x03" + b"\0" * 20))
    with pytest.raises(TfpipeError, match=r"train-images-idx3-ubyte.gz: not an IDX file"):
        idx.read(path)


def test_html_instead_of_idx_is_recognised(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(b"<!DOCTYPE html><html><body>Not found</body></html>")
    with pytest.raises(TfpipeError, match="HTML page"):
        idx.read(path)


def test_truncated_data_is_an_error(tmp_path):
    data = idx.encode(np.zeros((5, 4, 4), dtype=np.uint8))
    path = tmp_path / "short"
    path.write_bytes(data[:-7])
    with pytest.raises(TfpipeError, match="truncated or corrupt"):
        idx.read(path)


def test_truncated_gzip_is_an_error(tmp_path):
    path = tmp_path / "short.gz"
    path.write_bytes(gzip.compress(idx.encode(np.zeros((50, 4, 4), dtype=np.uint8)))[:-30])
    with pytest.raises(TfpipeError, match="not a complete gzip file"):
        idx.read(path)


def test_layout_accepts_idx_or_npz_and_any_sample_count(tmp_path):
    arrays = make_image_set(num_train=33, num_test=7)
    layout = local_layout(write_idx_folder(tmp_path / "idx", arrays))
    decoded = read_arrays(layout)
    assert decoded["x_train"].shape == (33, 12, 12) and len(decoded["y_test"]) == 7

    (tmp_path / "npz").mkdir()
    np.savez(tmp_path / "npz" / "mine.npz", **arrays)
    assert np.array_equal(read_arrays(local_layout(tmp_path / "npz"))["x_test"], arrays["x_test"])


def test_label_count_mismatch_is_reported(tmp_path):
    arrays = make_image_set(num_train=20, num_test=5)
    arrays["y_train"] = arrays["y_train"][:-1]
    with pytest.raises(TfpipeError, match="20 images .* but 19 labels"):
        read_arrays(local_layout(write_idx_folder(tmp_path / "bad", arrays)))


def test_scale_and_split():
    x = np.full((10, 2, 2), 255, dtype=np.uint8)
    scaled = scale_images(x)
    assert scaled.shape == (10, 2, 2, 1) and scaled.dtype == np.float32 and scaled.max() == 1.0
    y = np.arange(10)
    (_, yt), (_, yv) = split_validation(x, y, 0.3, seed=0)
    assert len(yv) == 3 and len(yt) == 7 and set(yt) | set(yv) == set(range(10))
    with pytest.raises(TfpipeError, match="validation_fraction=1.0"):
        split_validation(x, y, 1.0, seed=0)


def test_validation_fraction_fits_tiny_and_large_datasets():
    # The default 0.1 holds out at least one sample and always leaves one to train on.
    assert [validation_count(0.1, n) for n in (2, 5, 400, 1_000, 1_000_000)] == [
        1, 1, 40, 100, 100_000]
    assert validation_count(0.99, 10) == 9
    with pytest.raises(TfpipeError, match="too few to hold out"):
        validation_count(0.1, 1)
