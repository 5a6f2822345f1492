"""Your own arrays, read in place: a folder holding the four IDX files (gzip-compressed or
not: train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-images-idx3-ubyte[.gz],
t10k-labels-idx1-ubyte[.gz]) or one ``.npz`` with x_train, y_train, x_test, y_test; or the
path of such an ``.npz``.

Images: uint8 (count, height, width[, channels]); labels: non-negative integers.
Class names are the label numbers.

    --dataset arrays --dataset-options '{"path": "/data/digits"}'
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from plugins.datasets import layouts
from plugins.datasets.api import DataError, ImageDataset

KIND = "image_classification"
DEFAULTS: dict[str, Any] = {"path": None}


def _path(options: dict[str, Any]) -> Path:
    if not options.get("path"):
        raise DataError("dataset 'arrays' needs the path option: --dataset-options "
                        "'{\"path\": \"/data/mine\"}' (a folder with the four IDX files or one "
                        ".npz, or an .npz file)")
    return Path(str(options["path"])).expanduser()


def user_files(options: dict[str, Any]) -> dict[str, Path]:
    path = _path(options)
    if path.is_file():
        if path.suffix != ".npz":
            raise DataError(f"{path}: dataset 'arrays' reads a folder or an .npz file, not "
                            f"{path.suffix or 'this file'}")
        return {"npz": path}
    if not path.is_dir():
        raise DataError(f"{path}: no such file or folder (dataset 'arrays', option path)")
    found = layouts.find_layout(path)
    if found is None:
        raise DataError(
            f"{path}: holds neither the four IDX files ({', '.join(layouts.IDX_ROLES.values())}, "
            f"gzip-compressed or not) nor exactly one .npz with {', '.join(layouts.NPZ_KEYS)} "
            "(dataset 'arrays')")
    return found


def locate(folder: Path, options: dict[str, Any]) -> dict[str, Path] | None:
    return None  # only ever read in place (user_files)


def counts(options: dict[str, Any]) -> dict[str, int] | None:
    return layouts.counts(user_files(options))


def open_dataset(files: dict[str, Path], options: dict[str, Any]) -> ImageDataset:
    return layouts.open_layout(files, "arrays")
