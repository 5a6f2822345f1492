"""IDX files (the MNIST file format), plain or gzip-compressed, read as a stream.

Layout: two zero bytes, a type code (0x08 = unsigned byte), the number of
dimensions, one big-endian uint32 per dimension, then the data. The header is
parsed without numpy (for cheap counts); rows are read in chunks, so a file
never has to fit in memory.
"""
from __future__ import annotations

import gzip
import struct
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from plugins.datasets.api import DataError

if TYPE_CHECKING:
    import numpy as np

_UBYTE = 0x08
_GZIP_MAGIC = b"\x1f\x8b"
# What a broken gzip stream raises while reading.
_GZIP_ERRORS = (OSError, EOFError, zlib.error)


@contextmanager
def _open(path: Path) -> Iterator[BinaryIO]:
    with open(path, "rb") as raw:
        compressed = raw.read(2) == _GZIP_MAGIC
        raw.seek(0)
        if not compressed:
            yield raw
            return
        with gzip.GzipFile(fileobj=raw) as stream:
            yield stream  # type: ignore[misc]


def _read_exactly(stream: BinaryIO, size: int, path: Path) -> bytes:
    """`size` bytes, or fewer only at the end of the data."""
    parts, left = [], size
    try:
        while left:
            block = stream.read(left)
            if not block:
                break
            parts.append(block)
            left -= len(block)
    except _GZIP_ERRORS as exc:
        raise DataError(f"{path}: not a complete gzip file ({exc}); replace it with a good "
                        "copy") from exc
    return b"".join(parts)


def _parse_header(stream: BinaryIO, path: Path) -> tuple[int, ...]:
    head = _read_exactly(stream, 4, path)
    if len(head) < 4 or head[0] != 0 or head[1] != 0:
        hint = " (it looks like an HTML page)" if head.lstrip()[:1] == b"<" else ""
        raise DataError(f"{path}: not an IDX file: bad magic number{hint}; expected the MNIST IDX "
                        "format (e.g. train-images-idx3-ubyte.gz)")
    if head[2] != _UBYTE:
        raise DataError(f"{path}: IDX type code 0x{head[2]:02x} is not supported; only unsigned "
                        "bytes (0x08)")
    ndim = head[3]
    dims = _read_exactly(stream, 4 * ndim, path)
    if ndim < 1 or len(dims) < 4 * ndim:
        raise DataError(f"{path}: IDX header is truncated")
    return struct.unpack(f">{ndim}I", dims)


def read_header(path: Path) -> tuple[int, ...]:
    """The shape an IDX file declares (first dimension: the sample count). Reads a few bytes."""
    path = Path(path)
    with _open(path) as stream:
        return _parse_header(stream, path)


def iter_rows(path: Path, rows: int) -> Iterator[np.ndarray]:
    """uint8 arrays of at most `rows` samples each, (rows, *shape[1:]), in file order.

    At most one chunk of `rows` samples is in memory at a time. A file shorter
    or longer than its header says is an error naming it.
    """
    import numpy as np

    path = Path(path)
    with _open(path) as stream:
        shape = _parse_header(stream, path)
        count, row_shape = shape[0], shape[1:]
        row_bytes = int(np.prod(row_shape, dtype=np.int64)) if row_shape else 1
        done = 0
        while done < count:
            take = min(rows, count - done)
            data = _read_exactly(stream, take * row_bytes, path)
            if len(data) < take * row_bytes:
                held = done * row_bytes + len(data)
                raise DataError(f"{path}: IDX header promises {shape} = {count * row_bytes} "
                                f"bytes of data, the file holds {held}; the file is truncated "
                                "or corrupt")
            yield np.frombuffer(data, dtype=np.uint8).reshape((take, *row_shape))
            done += take
        if _read_exactly(stream, 1, path):
            raise DataError(f"{path}: more data than its IDX header {shape} promises; the file is "
                            "corrupt or not an IDX file")


def read(path: Path) -> np.ndarray:
    """The whole file as one uint8 array (for small files and tests)."""
    import numpy as np

    shape = read_header(path)
    chunks = list(iter_rows(path, max(shape[0], 1)))
    return np.concatenate(chunks) if chunks else np.zeros(shape, dtype=np.uint8)


def encode(array: np.ndarray) -> bytes:
    """uint8 array -> IDX bytes (for tests and for users converting their data)."""
    import numpy as np

    array = np.asarray(array, dtype=np.uint8)
    return header(array.shape) + array.tobytes()


def header(shape: tuple[int, ...]) -> bytes:
    """The IDX header of a uint8 array of `shape` (write it, then the rows)."""
    return bytes([0, 0, _UBYTE, len(shape)]) + struct.pack(f">{len(shape)}I", *shape)
