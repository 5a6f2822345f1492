"""Catalogue of the built-in datasets: where they live and what they must hash to."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from plugins.datasets.api import RemoteFile

KERAS_MIRROR = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"


def _files(bases: tuple[str, ...], pins: dict[str, tuple[int, str]]) -> tuple[RemoteFile, ...]:
    return tuple(RemoteFile(name, tuple(base + name for base in bases), sha, size)
                 for name, (size, sha) in pins.items())


# The four IDX members of an image dataset, by role.
IDX_ROLES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


@dataclass(frozen=True)
class ImageDataset:
    name: str
    idx_files: tuple[RemoteFile, ...] = ()
    npz_file: RemoteFile | None = None
    # Folders a distribution may have installed the data in (checked after the mirror).
    local_copies: tuple[str, ...] = ()
    class_names: tuple[str, ...] = ()

    def remote_files(self) -> tuple[RemoteFile, ...]:
        """What to download when no local copy exists (npz preferred: one request)."""
        return (self.npz_file,) if self.npz_file else self.idx_files


IMAGE_DATASETS = {
    "mnist": ImageDataset(
        name="mnist",
        npz_file=RemoteFile(
            "mnist.npz", (KERAS_MIRROR + "mnist.npz",),
            "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1", 11490434,
        ),
        idx_files=_files(("https://storage.googleapis.com/cvdf-datasets/mnist/",), {
            "train-images-idx3-ubyte.gz": (9912422, "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
            "train-labels-idx1-ubyte.gz": (28881, "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
            "t10k-images-idx3-ubyte.gz": (1648877, "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
            "t10k-labels-idx1-ubyte.gz": (4542, "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
        }),
        local_copies=("/usr/share/datasets/mnist",),
        class_names=tuple(str(digit) for digit in range(10)),
    ),
    "fashion_mnist": ImageDataset(
        name="fashion_mnist",
        idx_files=_files((KERAS_MIRROR, "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"), {
            "train-images-idx3-ubyte.gz": (26421880, "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"),
            "train-labels-idx1-ubyte.gz": (29515, "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"),
            "t10k-images-idx3-ubyte.gz": (4422102, "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"),
            "t10k-labels-idx1-ubyte.gz": (5148, "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"),
        }),
        local_copies=("/usr/share/datasets/fashion-mnist",),
        class_names=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                     "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    ),
}


def _idx_member(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / name.removesuffix(".gz")):
        if candidate.is_file():
            return candidate
    return None


def local_layout(folder: Path) -> dict[str, Path] | None:
    """The data files in `folder` by role, or None if it holds no complete set.

    Accepts the four IDX files (gzip-compressed or not) or one ``*.npz`` with
    x_train, y_train, x_test, y_test.
    """
    if not folder.is_dir():
        return None
    members = {role: _idx_member(folder, name) for role, name in IDX_ROLES.items()}
    if all(members.values()):
        return members  # type: ignore[return-value]
    npz = sorted(folder.glob("*.npz"))
    if len(npz) == 1:
        return {"npz": npz[0]}
    return None
