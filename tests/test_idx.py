"""IDX and npz files read as streams: chunks, headers, and errors that name the file."""
import gzip

import numpy as np
import pytest

from plugins.datasets import idx, npz
from plugins.errors import TfpipeError


def test_encode_decode_round_trip_plain_and_gzip(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "a").write_bytes(idx.encode(images))
    (tmp_path / "b.gz").write_bytes(gzip.compress(idx.encode(images)))
    assert np.array_equal(idx.read(tmp_path / "a"), images)
    assert np.array_equal(idx.read(tmp_path / "b.gz"), images)
    assert idx.read_header(tmp_path / "b.gz") == (2, 3, 4)


def test_a_20k_sample_file_is_read_in_chunks_of_the_requested_size(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (20_001, 28, 28), dtype=np.uint8)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(idx.encode(images), compresslevel=1))
    sizes, start = [], 0
    for chunk in idx.iter_rows(path, 1000):
        sizes.append(len(chunk))
        # Each chunk holds only its own rows: never more than 1000 images in memory at once.
        assert chunk.shape[1:] == (28, 28) and chunk.nbytes <= 1000 * 28 * 28
        assert np.array_equal(chunk, images[start:start + len(chunk)])
        start += len(chunk)
    assert sizes == [1000] * 20 + [1]


def test_bad_magic_names_the_file(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(b"\x01\x02\x08\x03" + b"\0" * 20))
    with pytest.raises(TfpipeError, match=r"train-images-idx3-ubyte.gz: not an IDX file"):
        idx.read(path)


def test_html_instead_of_idx_is_recognised(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(b"<!DOCTYPE html><html><body>Not found</body></html>")
    with pytest.raises(TfpipeError, match="HTML page"):
        idx.read_header(path)


def test_truncated_and_overlong_data_are_errors(tmp_path):
    data = idx.encode(np.zeros((5, 4, 4), dtype=np.uint8))
    short, long = tmp_path / "short", tmp_path / "long"
    short.write_bytes(data[:-7])
    long.write_bytes(data + b"\0")
    with pytest.raises(TfpipeError, match=r"short: .*truncated or corrupt"):
        list(idx.iter_rows(short, 2))
    with pytest.raises(TfpipeError, match=r"long: more data than its IDX header"):
        list(idx.iter_rows(long, 2))


def test_truncated_gzip_is_an_error(tmp_path):
    path = tmp_path / "short.gz"
    path.write_bytes(gzip.compress(idx.encode(np.zeros((50, 4, 4), dtype=np.uint8)))[:-30])
    with pytest.raises(TfpipeError, match="short.gz: not a complete gzip file"):
        list(idx.iter_rows(path, 10))


@pytest.mark.parametrize("save", [np.savez, np.savez_compressed])
def test_npz_members_are_read_from_headers_and_streamed_in_chunks(tmp_path, save):
    x = np.random.default_rng(1).integers(0, 256, (2500, 5, 5), dtype=np.uint8)
    y = np.arange(2500, dtype=np.int64) % 7
    save(tmp_path / "data.npz", x_train=x, y_train=y)
    members = npz.members(tmp_path / "data.npz")
    assert members["x_train"].shape == (2500, 5, 5) and members["y_train"].descr == "<i8"
    chunks = list(npz.iter_rows(members["x_train"], 1000))
    assert [len(c) for c in chunks] == [1000, 1000, 500]
    assert np.array_equal(np.concatenate(chunks), x)
    assert np.array_equal(np.concatenate(list(npz.iter_rows(members["y_train"], 999))), y)


def test_npz_with_objects_or_fortran_order_is_refused(tmp_path):
    np.savez(tmp_path / "objects.npz", x_train=np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(TfpipeError, match=r"objects.npz \(array x_train\): holds Python objects"):
        npz.members(tmp_path / "objects.npz")
    np.savez(tmp_path / "fortran.npz", x_train=np.asfortranarray(np.zeros((3, 4), dtype=np.uint8)))
    with pytest.raises(TfpipeError, match="Fortran order"):
        npz.members(tmp_path / "fortran.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(TfpipeError, match="junk.npz: not a readable npz file"):
        npz.members(tmp_path / "junk.npz")
