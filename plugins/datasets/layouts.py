"""The array layouts image datasets come in: four IDX files, or one npz with four arrays.

Shared by the mnist, fashion_mnist and arrays plugins. Finding and counting
read headers only (no numpy); opening streams the rows in chunks.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from plugins.datasets import idx, npz
from plugins.datasets.api import DataError, ImageDataset, ImageSplit

if TYPE_CHECKING:
    import numpy as np

# The four IDX members of an image dataset, by role.
IDX_ROLES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
SPLITS = {"train": ("train_images", "train_labels", "x_train", "y_train"),
          "test": ("test_images", "test_labels", "x_test", "y_test")}


def _idx_member(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / name.removesuffix(".gz")):
        if candidate.is_file():
            return candidate
    return None


def find_idx(folder: Path) -> dict[str, Path] | None:
    """The four IDX files (gzip-compressed or not) in `folder` by role, or None."""
    if not folder.is_dir():
        return None
    members = {role: _idx_member(folder, name) for role, name in IDX_ROLES.items()}
    return members if all(members.values()) else None  # type: ignore[return-value]


def find_layout(folder: Path, npz_name: str | None = None) -> dict[str, Path] | None:
    """The four IDX files, else one npz (`npz_name`, or the only ``*.npz``) in `folder`, or None."""
    folder = Path(folder)
    found = find_idx(folder)
    if found or not folder.is_dir():
        return found
    if npz_name:
        return {"npz": folder / npz_name} if (folder / npz_name).is_file() else None
    candidates = sorted(folder.glob("*.npz"))
    return {"npz": candidates[0]} if len(candidates) == 1 else None


def _npz_members(path: Path) -> dict[str, npz.Member]:
    members = npz.members(path)
    missing = [key for key in NPZ_KEYS if key not in members]
    if missing:
        raise DataError(f"{path}: npz lacks {', '.join(missing)}; it needs arrays "
                        f"{', '.join(NPZ_KEYS)}")
    return members


def counts(files: dict[str, Path]) -> dict[str, int]:
    """Samples per split from the file headers (no numpy, no data read)."""
    if "npz" in files:
        members = _npz_members(files["npz"])
        return {split: members[keys[2]].shape[0] if members[keys[2]].shape else 0
                for split, keys in SPLITS.items()}
    return {split: idx.read_header(files[keys[0]])[0] for split, keys in SPLITS.items()}


def _image_shape(shape: tuple[int, ...], where: str) -> tuple[int, int, int]:
    if len(shape) == 3:
        return shape[1], shape[2], 1
    if len(shape) == 4:
        return shape[1], shape[2], shape[3]
    raise DataError(f"{where}: images must have shape (count, height, width[, channels]), "
                    f"got {shape}")


def _check_labels_shape(shape: tuple[int, ...], count: int, where: str, images: str) -> None:
    if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1):
        raise DataError(f"{where}: labels must be one-dimensional, got {shape}")
    if shape[0] != count:
        raise DataError(f"{count} images in {images} but {shape[0]} labels in {where}; the files "
                        "do not belong together")


def _pairs(images: Iterator[np.ndarray], labels: Iterator[np.ndarray],
           shape: tuple[int, int, int]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    for x, y in zip(images, labels):
        yield x.reshape((len(x), *shape)), y.reshape(len(y))


def open_layout(files: dict[str, Path], dataset: str,
                expect_shape: tuple[int, int, int] | None = None, **info) -> ImageDataset:
    """A streamed ImageDataset of an IDX or npz layout; `info` goes to ImageDataset
    (class_names, num_classes). Headers are checked here, rows as they are read."""
    splits, shapes = {}, {}
    for split, (images_role, labels_role, x_key, y_key) in SPLITS.items():
        if "npz" in files:
            members = _npz_members(files["npz"])
            x, y = members[x_key], members[y_key]
            if x.descr not in ("|u1", "<u1", ">u1"):
                raise DataError(f"{x.where}: images must be uint8 (0-255), found {x.descr}; "
                                "convert with (x * 255).round().astype('uint8') [dataset "
                                f"{dataset}]")
            if y.descr[1:2] not in ("u", "i"):
                raise DataError(f"{y.where}: labels must be integers, found {y.descr} "
                                f"[dataset {dataset}]")
            x_shape, y_shape, x_where, y_where = x.shape, y.shape, x.where, y.where

            def batches(rows: int, x=x, y=y, split=split) -> Iterator:
                return _pairs(npz.iter_rows(x, rows), npz.iter_rows(y, rows), shapes[split])
        else:
            x_path, y_path = files[images_role], files[labels_role]
            x_shape, y_shape = idx.read_header(x_path), idx.read_header(y_path)
            x_where, y_where = str(x_path), str(y_path)

            def batches(rows: int, x_path=x_path, y_path=y_path, split=split) -> Iterator:
                return _pairs(idx.iter_rows(x_path, rows), idx.iter_rows(y_path, rows),
                              shapes[split])
        shapes[split] = _image_shape(x_shape, x_where)
        if expect_shape and shapes[split] != expect_shape:
            raise DataError(f"{x_where}: {dataset} images are {expect_shape[0]}x{expect_shape[1]} "
                            f"with {expect_shape[2]} channel(s), this file holds {shapes[split]}; "
                            "it is not a copy of that dataset")
        _check_labels_shape(y_shape, x_shape[0], y_where, x_where)
        splits[split] = ImageSplit(count=x_shape[0], batches=batches, source=x_where,
                                   label_source=y_where)
    if shapes["train"] != shapes["test"]:
        raise DataError(f"train images are {shapes['train']} but test images are {shapes['test']} "
                        f"({splits['test'].source}) [dataset {dataset}]")
    return ImageDataset(splits=splits, shape=shapes["train"], **info)
