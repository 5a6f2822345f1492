"""CIFAR-10: 50,000 training and 10,000 test colour images, 32x32x3, 10 classes.

The public "python version" tarball, pinned by sha256 and size. Mirror copies
(``<mirror>/cifar10/cifar-10-python.tar.gz``) are upstream's bytes, so they are
checked against the same pin (VERIFY_LOCAL). The batches are pickled dicts
(``b"data"``: uint8 (n, 3072) in channel-major order, ``b"labels"``); they are
read one member at a time, only the known members, with an unpickler that
accepts nothing but numpy arrays.
"""
from __future__ import annotations

import io
import pickle
import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from plugins.datasets.api import DataError, ImageDataset, ImageSplit, RemoteFile

if TYPE_CHECKING:
    import numpy as np

KIND = "image_classification"
DEFAULTS: dict[str, Any] = {}
# image.augment auto mirrors half of each training batch left to right:
# a mirrored plane, car or animal is still one.
MIRROR_KEEPS_LABEL = True
ARCHIVE = "cifar-10-python.tar.gz"
REMOTE = (RemoteFile(
    ARCHIVE, ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",),
    "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce", 170498071),)
VERIFY_LOCAL = True
FOLDER = "cifar-10-batches-py"
MEMBERS = {
    "train": tuple(f"{FOLDER}/data_batch_{number}" for number in range(1, 6)),
    "test": (f"{FOLDER}/test_batch",),
}
META = f"{FOLDER}/batches.meta"
SHAPE = (32, 32, 3)
CLASS_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
               "truck"]
COUNTS = {"train": 50000, "test": 10000}
_TAR_ERRORS = (OSError, EOFError, zlib.error, tarfile.TarError)


class _ArrayUnpickler(pickle.Unpickler):
    """Rebuilds numpy arrays and plain Python values; refuses any other class."""

    # _codecs.encode: how protocol-2 pickles written by Python 3 store bytes.
    ALLOWED = frozenset({("_codecs", "encode"), ("numpy.core.multiarray", "_reconstruct"),
                         ("numpy._core.multiarray", "_reconstruct"), ("numpy", "ndarray"),
                         ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
                         ("numpy._core.multiarray", "scalar")})

    def __init__(self, data: bytes, where: str):
        super().__init__(io.BytesIO(data), encoding="bytes")
        self.where = where

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise DataError(f"{self.where}: the pickle asks for {module}.{name}; a CIFAR-10 batch "
                            "holds only numpy arrays and lists. The file is not from the CIFAR-10 "
                            "tarball: replace it with a good copy")
        import numpy as np

        if module.startswith("numpy.core") and int(np.__version__.split(".")[0]) >= 2:
            module = module.replace("numpy.core", "numpy._core", 1)  # numpy 2 moved it
        return super().find_class(module, name)


def locate(folder: Path, options: dict[str, Any]) -> dict[str, Path] | None:
    path = Path(folder) / ARCHIVE
    return {"archive": path} if path.is_file() else None


def counts(options: dict[str, Any]) -> dict[str, int]:
    return dict(COUNTS)


def _load(archive: tarfile.TarFile, path: Path, member: str) -> dict:
    where = f"{path} (member {member})"
    try:
        handle = archive.extractfile(member)
        data = handle.read() if handle is not None else None
    except KeyError:
        raise DataError(f"{path}: has no member {member}; it is not the CIFAR-10 python tarball "
                        f"({ARCHIVE}) [dataset cifar10]") from None
    except _TAR_ERRORS as exc:
        raise DataError(f"{where}: unreadable ({exc}); replace {ARCHIVE} with a good copy") from exc
    if data is None:
        raise DataError(f"{where}: is not a regular file [dataset cifar10]")
    try:
        value = _ArrayUnpickler(data, where).load()
    except DataError:
        raise
    except Exception as exc:  # any unpickling failure means a damaged member
        raise DataError(f"{where}: not a readable pickle ({type(exc).__name__}: {exc}) "
                        "[dataset cifar10]") from exc
    if not isinstance(value, dict):
        raise DataError(f"{where}: expected a pickled dict, got {type(value).__name__}")
    return value


def _open_archive(path: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(path, "r:gz")
    except _TAR_ERRORS as exc:
        raise DataError(f"{path}: not a readable .tar.gz ({exc}); replace it with a good copy of "
                        f"{ARCHIVE} [dataset cifar10]") from exc


def _batch(value: dict, where: str) -> tuple[np.ndarray, np.ndarray]:
    import numpy as np

    data, labels = value.get(b"data"), value.get(b"labels")
    if not isinstance(data, np.ndarray) or labels is None:
        raise DataError(f"{where}: lacks b'data' (a uint8 array) or b'labels' [dataset cifar10]")
    labels = np.asarray(labels)
    size = SHAPE[0] * SHAPE[1] * SHAPE[2]
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != size:
        raise DataError(f"{where}: data must be uint8 (n, {size}), got {data.dtype} {data.shape} "
                        "[dataset cifar10]")
    if labels.shape != (len(data),):
        raise DataError(f"{where}: {len(data)} images but labels of shape {labels.shape} "
                        "[dataset cifar10]")
    # Rows are channel-major (1024 red, 1024 green, 1024 blue): CHW -> HWC.
    images = data.reshape(len(data), SHAPE[2], SHAPE[0], SHAPE[1]).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def _batches(path: Path, members: tuple[str, ...],
             rows: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    # One pickled batch (10,000 images, 30 MB) in memory at a time.
    with _open_archive(path) as archive:
        for member in members:
            images, labels = _batch(_load(archive, path, member), f"{path} (member {member})")
            for start in range(0, len(images), rows):
                yield images[start:start + rows], labels[start:start + rows]


def open_dataset(files: dict[str, Path], options: dict[str, Any]) -> ImageDataset:
    path = Path(files["archive"])
    with _open_archive(path) as archive:
        try:
            names = set(archive.getnames())
        except _TAR_ERRORS as exc:
            raise DataError(f"{path}: unreadable ({exc}); replace it with a good copy of {ARCHIVE} "
                            "[dataset cifar10]") from exc
        missing = [m for m in (*MEMBERS["train"], *MEMBERS["test"], META) if m not in names]
        if missing:
            raise DataError(f"{path}: lacks {', '.join(missing)}; it is not the CIFAR-10 python "
                            f"tarball ({ARCHIVE}) [dataset cifar10]")
        meta = _load(archive, path, META)
    names_raw = meta.get(b"label_names")
    if not isinstance(names_raw, list) or not names_raw:
        raise DataError(f"{path} (member {META}): lacks b'label_names' [dataset cifar10]")
    class_names = [n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in names_raw]
    if class_names != CLASS_NAMES:  # labels 0-9 mean these ten classes, in this order
        raise DataError(f"{path} (member {META}): names {len(class_names)} classes "
                        f"({', '.join(class_names[:12])}); CIFAR-10 has 10: {', '.join(CLASS_NAMES)}. "
                        "The file is not the CIFAR-10 python tarball: replace it [dataset cifar10]")
    splits = {
        split: ImageSplit(count=None,  # only known once every batch is read
                          batches=lambda rows, members=members: _batches(path, members, rows),
                          source=f"{path} ({', '.join(m.rsplit('/', 1)[-1] for m in members)})")
        for split, members in MEMBERS.items()
    }
    return ImageDataset(splits=splits, shape=SHAPE, class_names=class_names,
                        num_classes=len(class_names))
