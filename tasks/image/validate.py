"""Check what a dataset plugin yields, batch by batch (pure functions, numpy, no TensorFlow).

Every error names the dataset and the file the bad batch came from, and says
what to do. `scan` reads a whole dataset once (bounded memory) and returns the
facts the download manifest records: counts, shape, classes.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from plugins.datasets.api import DataError, ImageDataset, ImageSplit

logger = logging.getLogger(__name__)

SPLITS = ("train", "test")
MAX_CLASSES = 1 << 16  # labels are stored as uint16 in the shards
SCAN_ROWS = 4096


def check_splits(dataset: ImageDataset, name: str) -> None:
    missing = [split for split in SPLITS if split not in dataset.splits]
    if missing:
        raise DataError(f"dataset {name!r} gives no {' or '.join(missing)} split; a dataset plugin "
                        f"must give {', '.join(SPLITS)}")
    if len(dataset.shape) != 3 or not all(isinstance(v, int) and v > 0 for v in dataset.shape):
        raise DataError(f"dataset {name!r} declares image shape {dataset.shape}; it must be "
                        "(height, width, channels)")


def checked_batches(dataset: ImageDataset, split: str, name: str,
                    rows: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The split's batches as (uint8 images, int64 labels), each checked against the declaration."""
    part: ImageSplit = dataset.splits[split]
    declared = dataset.num_classes
    for images, labels in part.batches(rows):
        images, labels = np.asarray(images), np.asarray(labels)
        if images.dtype != np.uint8:
            raise DataError(f"{part.source}: images must be uint8 (0-255), got {images.dtype} "
                            f"[dataset {name}]")
        if images.shape[1:] != tuple(dataset.shape):
            raise DataError(f"{part.source}: an image of shape {images.shape[1:]}, but dataset "
                            f"{name!r} declares {tuple(dataset.shape)}; all images must be the "
                            "same size")
        if labels.ndim != 1 or len(labels) != len(images):
            raise DataError(f"{part.labels_from}: {len(images)} images but labels of shape "
                            f"{labels.shape} in one batch [dataset {name}]")
        if len(labels) == 0:
            continue
        if not np.issubdtype(labels.dtype, np.integer):
            raise DataError(f"{part.labels_from}: labels must be integers, got {labels.dtype} "
                            f"[dataset {name}]")
        low, high = int(labels.min()), int(labels.max())
        if low < 0:
            raise DataError(f"{part.labels_from}: label {low} is negative; labels must be class "
                            f"numbers 0, 1, 2, ... [dataset {name}]")
        if declared is not None and high >= declared:
            raise DataError(f"{part.labels_from}: label {high} is outside {name}'s classes 0-"
                            f"{declared - 1}; the file is not a copy of {name} (replace it) or "
                            "belongs to another dataset")
        if high >= MAX_CLASSES:
            raise DataError(f"{part.labels_from}: label {high} is too large; at most {MAX_CLASSES} "
                            f"classes are supported [dataset {name}]")
        yield images, labels.astype(np.int64, copy=False)


def scan(dataset: ImageDataset, name: str, rows: int = SCAN_ROWS,
         progress: Callable[[str, int], None] | None = None) -> dict[str, Any]:
    """Read every sample once; return counts, shape, num_classes, class_names and notes."""
    check_splits(dataset, name)
    counts: dict[str, int] = {}
    present: dict[str, np.ndarray] = {}
    per_label: dict[str, np.ndarray] = {}
    for split in SPLITS:
        seen = np.zeros(MAX_CLASSES, dtype=np.int64)  # samples per label
        count = 0
        for _images, labels in checked_batches(dataset, split, name, rows):
            count += len(labels)
            seen += np.bincount(labels, minlength=MAX_CLASSES)
            if progress:
                progress(split, count)
        declared = dataset.splits[split].count
        if declared is not None and declared != count:
            raise DataError(f"{dataset.splits[split].source}: declared {declared} {split} samples "
                            f"but yielded {count} [dataset {name}]")
        if count == 0:
            raise DataError(f"{dataset.splits[split].source}: the {split} split of {name!r} is "
                            "empty")
        counts[split] = count
        present[split] = np.flatnonzero(seen)
        per_label[split] = seen
    highest = int(max(present["train"].max(), present["test"].max()))
    num_classes = dataset.num_classes or highest + 1
    if num_classes < 2:
        raise DataError(f"{dataset.splits['train'].labels_from}: every label is {highest}; "
                        f"classification needs at least two classes [dataset {name}]")
    if dataset.num_classes is not None and len(present["train"]) < num_classes:
        held = ", ".join(map(str, present["train"][:20]))
        raise DataError(f"{dataset.splits['train'].labels_from}: holds {len(present['train'])} "
                        f"of {name}'s {num_classes} classes (labels {held}); the file is not a "
                        f"complete copy of {name}: replace it")
    names = dataset.class_names
    if names is not None and len(names) != num_classes:
        raise DataError(f"dataset {name!r} names {len(names)} classes but has {num_classes}; fix "
                        "the plugin's class names")
    notes = list(dataset.notes)
    # Labels only the test set has: the model never learns them (the preprocessing stage warns,
    # in the log and in the run's report).
    test_only = [int(label) for label in present["test"] if not per_label["train"][label]]
    unused = sorted(set(range(num_classes)) - set(present["train"].tolist()) - set(test_only))
    if unused:
        notes.append(f"{len(unused)} class(es) have no sample in either split: "
                     f"{', '.join(map(str, unused[:20]))}")
    for note in notes:
        logger.warning("dataset %s: %s", name, note)
    return {
        "counts": counts,
        "shape": list(dataset.shape),
        "num_classes": num_classes,
        "class_names": ([str(n) for n in names] if names is not None
                        else [str(i) for i in range(num_classes)]),
        "notes": notes,
        "test_only_labels": {str(label): int(per_label["test"][label]) for label in test_only},
    }
