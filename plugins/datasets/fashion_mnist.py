"""Fashion-MNIST (Zalando): 60,000 training and 10,000 test images of clothing, 28x28
grayscale, 10 classes.

Pinned upstream IDX files. Debian's ``dataset-fashion-mnist`` installs the full
data in /usr/share/datasets/fashion-mnist, re-compressed: its ``.gz`` bytes
differ from upstream's, so local copies are checked by decoding them (28x28
images, labels 0-9, every class present) instead of by checksum.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from plugins.datasets import layouts
from plugins.datasets.api import ImageDataset, pinned

KIND = "image_classification"
DEFAULTS: dict[str, Any] = {}
# image.augment auto mirrors half of each training batch left to right:
# a mirrored shirt or shoe is still a shirt or a shoe.
MIRROR_KEEPS_LABEL = True
REMOTE = pinned(
    ("https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
     "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"),
    {
        "train-images-idx3-ubyte.gz":
            (26421880, "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"),
        "train-labels-idx1-ubyte.gz":
            (29515, "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"),
        "t10k-images-idx3-ubyte.gz":
            (4422102, "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"),
        "t10k-labels-idx1-ubyte.gz":
            (5148, "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"),
    })
LOCAL_COPIES = ("/usr/share/datasets/fashion-mnist",)
SHAPE = (28, 28, 1)
CLASS_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
COUNTS = {"train": 60000, "test": 10000}


def locate(folder: Path, options: dict[str, Any]) -> dict[str, Path] | None:
    return layouts.find_idx(Path(folder))


def counts(options: dict[str, Any]) -> dict[str, int]:
    return dict(COUNTS)


def open_dataset(files: dict[str, Path], options: dict[str, Any]) -> ImageDataset:
    return layouts.open_layout(files, "fashion_mnist", expect_shape=SHAPE, class_names=CLASS_NAMES,
                               num_classes=len(CLASS_NAMES))
