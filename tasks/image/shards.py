"""Compact image shards: fixed-length records in plain binary files (pure helpers, no TensorFlow).

A record is ``[label: uint16 little-endian][pixels: height*width*channels uint8]``;
a shard file is records back to back, nothing else, so
``tf.data.FixedLengthRecordDataset`` reads it directly and training decodes and
scales in the graph. Files: ``train-00000.bin ...``, ``val-*.bin``,
``test-*.bin``, described by ``meta.json`` (see `meta`).

Training samples are assigned to shards at random (seeded) and each shard is
shuffled (seeded) when it is closed, so every shard is a random subset in random
order, whatever order the source has (image folders come class by class).
Memory stays bounded: a batch of records while writing, one shard while shuffling.
"""
from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from plugins.errors import TfpipeError
from tasks.atomic import writing

if TYPE_CHECKING:
    import numpy as np

LABEL_BYTES = 2
FORMAT = "tfpipe-shards-1"
MAX_RECORDS = 10_000  # per shard
SHARD_BYTES = 32 << 20  # bytes per shard at most (large images give fewer records per shard)
MIN_RECORDS = 64


def record_bytes(shape: Iterable[int]) -> int:
    return LABEL_BYTES + math.prod(shape)


def records_per_shard(record_size: int) -> int:
    return max(MIN_RECORDS, min(MAX_RECORDS, SHARD_BYTES // record_size))


def shard_name(split: str, index: int) -> str:
    return f"{split}-{index:05d}.bin"


def split_counts(count: int, fraction: float) -> tuple[int, int]:
    """(training, validation) sizes when `fraction` of `count` samples is held out (half up)."""
    held = math.floor(fraction * count + 0.5)
    return count - held, held


def validation_mask(count: int, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask (one byte per sample): True for the seeded round(fraction*count) held out."""
    import numpy as np

    _, held = split_counts(count, fraction)
    mask = np.zeros(count, dtype=bool)
    mask[np.random.default_rng([seed, 0]).choice(count, size=held, replace=False)] = True
    return mask


def shard_assignment(count: int, shards: int, seed: int) -> np.ndarray:
    """Shard index of each of `count` samples in stream order: a seeded random assignment with
    sizes as equal as possible (they differ by at most one)."""
    import numpy as np

    dtype = np.uint16 if shards <= 1 << 16 else np.uint32
    order = np.random.default_rng([seed, 1]).permutation(count)
    return (order % shards).astype(dtype)


def encode(images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """uint8 images (n, h, w, c) and labels (n,) -> uint8 records (n, record_bytes)."""
    import numpy as np

    count = len(images)
    pixels = int(np.prod(images.shape[1:]))
    records = np.empty((count, LABEL_BYTES + pixels), dtype=np.uint8)
    records[:, :LABEL_BYTES] = labels.astype("<u2").view(np.uint8).reshape(count, LABEL_BYTES)
    records[:, LABEL_BYTES:] = images.reshape(count, -1)
    return records


def decode(data: bytes | np.ndarray, shape: Iterable[int]) -> tuple[np.ndarray, np.ndarray]:
    """Records -> (uint8 images (n, *shape), int64 labels (n,)); the numpy twin of the graph's
    decode (tasks.image.stream.decode)."""
    import numpy as np

    shape = tuple(shape)
    raw = np.frombuffer(data, dtype=np.uint8) if isinstance(data, (bytes, bytearray)) else data
    records = raw.reshape(-1, record_bytes(shape))
    labels = records[:, :LABEL_BYTES].copy().view("<u2").reshape(-1).astype(np.int64)
    return records[:, LABEL_BYTES:].reshape((-1, *shape)), labels


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp")


def _write_file(path: Path, data: bytes) -> dict[str, Any]:
    tmp = _temporary(path)
    try:
        with writing(path), open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return {"file": path.name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


class SequentialWriter:
    """Records in arrival order, `per_shard` to a file (validation and test shards)."""

    def __init__(self, folder: Path, split: str, record_size: int, per_shard: int):
        self.folder, self.split = Path(folder), split
        self.record_size, self.per_shard = record_size, per_shard
        self.buffer: list[bytes] = []
        self.buffered = 0
        self.shards: list[dict[str, Any]] = []

    def add(self, records: np.ndarray) -> None:
        start = 0
        while start < len(records):
            take = min(self.per_shard - self.buffered, len(records) - start)
            self.buffer.append(records[start:start + take].tobytes())
            self.buffered += take
            start += take
            if self.buffered == self.per_shard:
                self._flush()

    def _flush(self) -> None:
        if not self.buffered:
            return
        path = self.folder / shard_name(self.split, len(self.shards))
        self.shards.append({**_write_file(path, b"".join(self.buffer)), "records": self.buffered})
        self.buffer, self.buffered = [], 0

    def close(self) -> list[dict[str, Any]]:
        self._flush()
        return self.shards


class RandomWriter:
    """Records spread over `shards` files by `assignment` (shard of each record in arrival
    order); each file is shuffled (seeded) on close."""

    def __init__(self, folder: Path, split: str, record_size: int, assignment: np.ndarray,
                 seed: int):
        self.folder, self.split, self.record_size = Path(folder), split, record_size
        self.assignment, self.seed, self.position = assignment, seed, 0
        self.count = int(assignment.max()) + 1 if len(assignment) else 0
        self.parts = [self.folder / f".{shard_name(split, index)}.part"
                      for index in range(self.count)]
        for part in self.parts:
            with writing(part):
                part.write_bytes(b"")

    def add(self, records: np.ndarray) -> None:
        import numpy as np

        targets = self.assignment[self.position:self.position + len(records)]
        if len(targets) != len(records):
            raise TfpipeError(f"{self.split} shards: more records than the {len(self.assignment)} "
                              "planned; the dataset yielded more samples than it declared")
        self.position += len(records)
        order = np.argsort(targets, kind="stable")
        bounds = np.searchsorted(targets[order], np.arange(self.count + 1))
        for index in np.flatnonzero(np.diff(bounds)):
            rows = order[bounds[index]:bounds[index + 1]]
            # One open per batch and shard: no limit on open files, however many shards.
            with writing(self.parts[index]), open(self.parts[index], "ab") as handle:
                handle.write(records[rows].tobytes())

    def close(self) -> list[dict[str, Any]]:
        import numpy as np

        if self.position != len(self.assignment):
            raise TfpipeError(f"{self.split} shards: {self.position} records written, "
                              f"{len(self.assignment)} planned; the dataset yielded fewer samples "
                              "than it declared")
        shards = []
        for index, part in enumerate(self.parts):
            records = np.fromfile(part, dtype=np.uint8).reshape(-1, self.record_size)
            order = np.random.default_rng([self.seed, 2, index]).permutation(len(records))
            path = self.folder / shard_name(self.split, index)
            shards.append({**_write_file(path, records[order].tobytes()), "records": len(records)})
            part.unlink()
        return shards


def discard(folder: Path) -> None:
    """Remove every shard file, finished or partial, from `folder`: after a failed write they
    are only in the way (and, on a full disk, hold the space the rerun needs)."""
    for split in ("train", "val", "test"):
        for pattern in (f"{split}-*.bin", f".{split}-*.bin.part", f".{split}-*.bin.tmp"):
            for path in Path(folder).glob(pattern):
                path.unlink(missing_ok=True)


def meta(shape: Iterable[int], num_classes: int, class_names: list[str],
         shards: dict[str, list[dict[str, Any]]], **extra: Any) -> dict[str, Any]:
    """What meta.json holds: everything a reader needs to decode the shards."""
    shape = [int(v) for v in shape]
    return {
        "format": FORMAT,
        "input_shape": shape,
        "num_classes": int(num_classes),
        "class_names": list(class_names),
        "counts": {split: sum(s["records"] for s in files) for split, files in shards.items()},
        "record": {"bytes": record_bytes(shape), "label_bytes": LABEL_BYTES,
                   "label_dtype": "uint16-le", "image_dtype": "uint8", "image_shape": shape,
                   "scale": "divide by 255 -> [0, 1]"},
        "shards": shards,
        **extra,
    }


def shard_paths(folder: Path, meta_: dict[str, Any], split: str) -> list[Path]:
    return [Path(folder) / shard["file"] for shard in meta_["shards"][split]]


def verify(folder: Path, meta_: dict[str, Any]) -> None:
    """Every shard meta.json lists is there with its recorded size (cheap; sha256 is checked by
    the consuming task against its cache)."""
    for files in meta_["shards"].values():
        for shard in files:
            path = Path(folder) / shard["file"]
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                raise TfpipeError(f"{path}: missing; delete {folder} and rerun to rebuild the "
                                  "shards") from None
            if size != shard["bytes"] or size != shard["records"] * meta_["record"]["bytes"]:
                raise TfpipeError(f"{path}: {size} bytes, expected {shard['bytes']}; the shard was "
                                  f"changed or truncated: delete {folder} and rerun")
