"""Arrays inside a ``.npz`` file, streamed member by member through ``zipfile``.

An npz is a zip of ``.npy`` files. Each member's header (dtype, shape) is parsed
without numpy (for cheap counts); rows are then read in chunks from the zip
stream, so an array never has to fit in memory. Works for ``np.savez`` and
``np.savez_compressed``; pickled (object) arrays are refused.
"""
from __future__ import annotations

import ast
import struct
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from plugins.datasets.api import DataError

if TYPE_CHECKING:
    import numpy as np

_MAGIC = b"\x93NUMPY"
_ERRORS = (OSError, EOFError, zlib.error, zipfile.BadZipFile)


@dataclass(frozen=True)
class Member:
    """One array of an npz: its dtype string (numpy 'descr') and shape."""

    path: Path
    key: str
    descr: str
    shape: tuple[int, ...]

    @property
    def where(self) -> str:
        return f"{self.path} (array {self.key})"


def _parse_header(stream: BinaryIO, where: str) -> tuple[str, tuple[int, ...]]:
    magic = stream.read(8)
    if len(magic) < 8 or magic[:6] != _MAGIC:
        raise DataError(f"{where}: not a .npy array (bad magic); save it with numpy.savez")
    major = magic[6]
    size_format = "<H" if major == 1 else "<I"
    length = struct.unpack(size_format, stream.read(struct.calcsize(size_format)))[0]
    try:
        header = ast.literal_eval(stream.read(length).decode("latin1"))
        descr, fortran, shape = header["descr"], header["fortran_order"], tuple(header["shape"])
    except (ValueError, SyntaxError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise DataError(f"{where}: unreadable .npy header ({exc})") from exc
    if not isinstance(descr, str) or descr.startswith("|O"):
        raise DataError(f"{where}: holds Python objects (a pickled array); save plain numeric "
                        "arrays (uint8 images, integer labels)")
    if fortran and len(shape) > 1:
        raise DataError(f"{where}: is in Fortran order; save it in C order "
                        "(numpy.ascontiguousarray) so it can be read row by row")
    return descr, shape


def _name(key: str) -> str:
    return f"{key}.npy"


@contextmanager
def _member_stream(path: Path, key: str) -> Iterator[BinaryIO]:
    try:
        with zipfile.ZipFile(path) as archive:
            if _name(key) not in archive.namelist():
                present = sorted(n.removesuffix(".npy") for n in archive.namelist())
                raise DataError(f"{path}: npz has no array {key!r} (it holds {', '.join(present)})")
            with archive.open(_name(key)) as stream:
                yield stream  # type: ignore[misc]
    except _ERRORS as exc:
        raise DataError(f"{path}: not a readable npz file ({exc}); replace it with a good "
                        "copy") from exc


def members(path: Path) -> dict[str, Member]:
    """Every array of the npz by name, headers only (no numpy, no data read)."""
    path = Path(path)
    found = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                if not name.endswith(".npy"):
                    continue
                key = name.removesuffix(".npy")
                with archive.open(name) as stream:
                    descr, shape = _parse_header(stream, f"{path} (array {key})")
                found[key] = Member(path, key, descr, shape)
    except _ERRORS as exc:
        raise DataError(f"{path}: not a readable npz file ({exc}); replace it with a good "
                        "copy") from exc
    return found


def iter_rows(member: Member, rows: int) -> Iterator[np.ndarray]:
    """Arrays of at most `rows` leading-axis entries of one member, in order."""
    import numpy as np

    dtype = np.dtype(member.descr)
    count, row_shape = (member.shape[0], member.shape[1:]) if member.shape else (1, ())
    row_bytes = int(np.prod(row_shape, dtype=np.int64)) * dtype.itemsize
    with _member_stream(member.path, member.key) as stream:
        _parse_header(stream, member.where)
        done = 0
        while done < count:
            take = min(rows, count - done)
            try:
                data = stream.read(take * row_bytes)
            except _ERRORS as exc:
                raise DataError(f"{member.where}: not a readable npz file ({exc})") from exc
            if len(data) < take * row_bytes:
                raise DataError(f"{member.where}: shorter than its header {member.shape} says; the "
                                "file is truncated or corrupt")
            yield np.frombuffer(data, dtype=dtype).reshape((take, *row_shape))
            done += take
