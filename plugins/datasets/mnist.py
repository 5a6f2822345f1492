"""MNIST handwritten digits: 60,000 training and 10,000 test images, 28x28 grayscale, 10 classes.

Downloaded as Keras' pinned ``mnist.npz`` (one request); a local copy may also
be the four IDX files (gzip-compressed or not), checked by decoding them.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from plugins.datasets import layouts
from plugins.datasets.api import ImageDataset, RemoteFile, pinned

KIND = "image_classification"
DEFAULTS: dict[str, Any] = {}
NPZ = "mnist.npz"
REMOTE = (RemoteFile(
    NPZ, ("https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz",),
    "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1", 11490434),)
# The same data as IDX files, for mirrors that hold those (not downloaded: the npz is one request).
IDX_FILES = pinned(("https://storage.googleapis.com/cvdf-datasets/mnist/",), {
    "train-images-idx3-ubyte.gz":
        (9912422, "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
    "train-labels-idx1-ubyte.gz":
        (28881, "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
    "t10k-images-idx3-ubyte.gz":
        (1648877, "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
    "t10k-labels-idx1-ubyte.gz":
        (4542, "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
})
LOCAL_COPIES = ("/usr/share/datasets/mnist",)
SHAPE = (28, 28, 1)
CLASS_NAMES = [str(digit) for digit in range(10)]
COUNTS = {"train": 60000, "test": 10000}


def locate(folder: Path, options: dict[str, Any]) -> dict[str, Path] | None:
    return layouts.find_layout(Path(folder), npz_name=NPZ)


def counts(options: dict[str, Any]) -> dict[str, int]:
    return dict(COUNTS)


def open_dataset(files: dict[str, Path], options: dict[str, Any]) -> ImageDataset:
    return layouts.open_layout(files, "mnist", expect_shape=SHAPE, class_names=CLASS_NAMES,
                               num_classes=len(CLASS_NAMES))
