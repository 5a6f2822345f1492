"""Decode IDX files (the MNIST file format), plain or gzip-compressed.

Layout: two zero bytes, a type code (0x08 = unsigned byte), the number of
dimensions, one big-endian uint32 per dimension, then the data.
"""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from plugins.errors import TfpipeError

_UBYTE = 0x08


def read_bytes(path: Path) -> bytes:
    """File content, gunzipped when it starts with the gzip magic."""
    raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise TfpipeError(f"{path}: not a complete gzip file ({exc}); replace it with a good copy") from exc
    return raw


def decode(data: bytes, source: str) -> np.ndarray:
    """IDX bytes -> uint8 array; any inconsistency is an error naming `source`."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        hint = " (it looks like an HTML page)" if data.lstrip()[:1] == b"<" else ""
        raise TfpipeError(f"{source}: not an IDX file: bad magic number{hint}; expected the "
                          "MNIST IDX format (e.g. train-images-idx3-ubyte.gz)")
    if data[2] != _UBYTE:
        raise TfpipeError(f"{source}: IDX type code 0x{data[2]:02x} is not supported; only unsigned bytes (0x08)")
    ndim = data[3]
    header = 4 + 4 * ndim
    if ndim < 1 or len(data) < header:
        raise TfpipeError(f"{source}: IDX header is truncated")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    expected = int(np.prod(shape))
    if len(data) - header != expected:
        raise TfpipeError(f"{source}: IDX header promises {shape} = {expected} bytes of data, "
                          f"file holds {len(data) - header}; the file is truncated or corrupt")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def read(path: Path) -> np.ndarray:
    return decode(read_bytes(path), str(path))


def encode(array: np.ndarray) -> bytes:
    """uint8 array -> IDX bytes (for tests and for users converting their data)."""
    array = np.asarray(array, dtype=np.uint8)
    return bytes([0, 0, _UBYTE, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
