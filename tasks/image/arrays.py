"""Find, read and validate image datasets in the IDX or npz layout (pure functions)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from plugins.datasets import idx
from plugins.datasets.catalog import NPZ_KEYS
from plugins.errors import TfpipeError


def read_arrays(files: dict[str, Path]) -> dict[str, np.ndarray]:
    """Decode a layout into x_train, y_train, x_test, y_test, validated."""
    if "npz" in files:
        path = files["npz"]
        try:
            with np.load(path, allow_pickle=False) as data:
                missing = [key for key in NPZ_KEYS if key not in data.files]
                if missing:
                    raise TfpipeError(f"{path}: npz lacks {', '.join(missing)}; it needs arrays "
                                      f"{', '.join(NPZ_KEYS)}")
                arrays = {key: np.asarray(data[key]) for key in NPZ_KEYS}
        except (OSError, ValueError) as exc:
            raise TfpipeError(f"{path}: not a readable npz file ({exc})") from exc
        sources = {key: str(path) for key in NPZ_KEYS}
    else:
        arrays = {
            "x_train": idx.read(files["train_images"]),
            "y_train": idx.read(files["train_labels"]),
            "x_test": idx.read(files["test_images"]),
            "y_test": idx.read(files["test_labels"]),
        }
        sources = {"x_train": str(files["train_images"]), "y_train": str(files["train_labels"]),
                   "x_test": str(files["test_images"]), "y_test": str(files["test_labels"])}
    validate(arrays, sources)
    return arrays


def validate(arrays: dict[str, np.ndarray], sources: dict[str, str]) -> None:
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim not in (3, 4):
            raise TfpipeError(f"{sources[f'x_{split}']}: images must have shape (count, height, width"
                              f"[, channels]), got {x.shape}")
        if y.ndim != 1:
            raise TfpipeError(f"{sources[f'y_{split}']}: labels must be one-dimensional, got {y.shape}")
        if len(x) != len(y):
            raise TfpipeError(f"{split} set: {len(x)} images in {sources[f'x_{split}']} but "
                              f"{len(y)} labels in {sources[f'y_{split}']}")
        if len(x) == 0:
            raise TfpipeError(f"{sources[f'x_{split}']}: the {split} set is empty")
        if not np.issubdtype(y.dtype, np.integer) or y.min() < 0:
            raise TfpipeError(f"{sources[f'y_{split}']}: labels must be non-negative integers")
    if arrays["x_train"].shape[1:] != arrays["x_test"].shape[1:]:
        raise TfpipeError(f"train images are {arrays['x_train'].shape[1:]} but test images are "
                          f"{arrays['x_test'].shape[1:]} ({sources['x_test']})")


def scale_images(images: np.ndarray) -> np.ndarray:
    """uint8 (n, h, w[, c]) -> float32 (n, h, w, c) in [0, 1]."""
    images = images.astype(np.float32) / 255.0
    return images[..., np.newaxis] if images.ndim == 3 else images


def validation_count(fraction: float, count: int) -> int:
    """Samples held out: round(fraction * count), at least 1, leaving at least 1 to train on."""
    if not 0 < fraction < 1:
        raise TfpipeError(f"validation_fraction={fraction} must be between 0 and 1 (exclusive); "
                          "set image.validation_fraction")
    if count < 2:
        raise TfpipeError(f"the training set has {count} sample(s): too few to hold out a "
                          "validation sample; use a larger dataset")
    return min(max(1, round(fraction * count)), count - 1)


def split_validation(x: np.ndarray, y: np.ndarray, fraction: float, seed: int):
    """Hold out `fraction` of the training samples (seeded, see validation_count) for validation."""
    size = validation_count(fraction, len(x))
    order = np.random.default_rng(seed).permutation(len(x))
    train, val = order[size:], order[:size]
    return (x[train], y[train]), (x[val], y[val])
