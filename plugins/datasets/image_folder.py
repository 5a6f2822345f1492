"""Your own images, read in place: one sub-folder per class, as for
``keras.utils.image_dataset_from_directory``::

    flowers/daisy/001.jpg
    flowers/daisy/002.png
    flowers/tulip/...

Class names are the sorted sub-folder names (label = index). Images (.png, .jpg,
.jpeg, .bmp, .gif; other files are skipped with a note) are decoded with Pillow,
converted to ``color`` ("rgb" or "grayscale") and resized to ``image_size``
[height, width] with bilinear interpolation, as Keras does. The test split is
``test_path`` (the same class sub-folders) or, without it, a seeded hold-out of
``test_fraction`` of each class.

    --dataset image_folder --dataset-options '{"path": "/data/flowers", "image_size": [64, 64]}'
"""
from __future__ import annotations

import math
import random
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from plugins.datasets.api import DataError, ImageDataset, ImageSplit

if TYPE_CHECKING:
    import numpy as np

KIND = "image_classification"
DEFAULTS: dict[str, Any] = {
    "path": None,
    "image_size": [64, 64],  # small enough for CPU training; Keras' own default is 256x256
    "color": "rgb",
    "test_path": None,
    "test_fraction": 0.2,
    "seed": 0,
}
EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
_NAME = "image_folder"


def _folder(value: Any, option: str) -> Path:
    path = Path(str(value)).expanduser()
    if not path.is_dir():
        raise DataError(f"{path}: no such folder (dataset {_NAME}, option {option}); point it at a "
                        "folder with one sub-folder of images per class")
    return path


def user_files(options: dict[str, Any]) -> dict[str, Path]:
    if not options.get("path"):
        raise DataError(f"dataset {_NAME} needs the path option: --dataset-options "
                        "'{\"path\": \"/data/flowers\"}' (one sub-folder of images per class)")
    files = {"train": _folder(options["path"], "path")}
    if options.get("test_path"):
        files["test"] = _folder(options["test_path"], "test_path")
    return files


def locate(folder: Path, options: dict[str, Any]) -> dict[str, Path] | None:
    return None  # only ever read in place (user_files)


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def list_classes(root: Path) -> tuple[dict[str, list[Path]], list[str]]:
    """Images per class sub-folder (sorted, recursively) and notes on skipped files."""
    notes: list[str] = []
    classes: dict[str, list[Path]] = {}
    loose = [p.name for p in sorted(root.iterdir()) if p.is_file() and _visible(p)]
    if loose:
        notes.append(f"{root}: skipped {len(loose)} file(s) outside class sub-folders "
                     f"(e.g. {loose[0]})")
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and _visible(p)):
        images, skipped = [], []
        for path in sorted(folder.rglob("*")):
            hidden = any(part.startswith(".") for part in path.relative_to(root).parts)
            if hidden or not path.is_file():
                continue
            (images if path.suffix.lower() in EXTENSIONS else skipped).append(path)
        if skipped:
            notes.append(f"{folder}: skipped {len(skipped)} file(s) that are not "
                         f"{'/'.join(EXTENSIONS)} images (e.g. {skipped[0].name})")
        classes[folder.name] = images
    return classes, notes


def _check_classes(root: Path, classes: dict[str, list[Path]], option: str) -> None:
    if not classes:
        raise DataError(f"{root}: has no class sub-folders (dataset {_NAME}, option {option}); put "
                        "the images of each class in a sub-folder named after the class")
    for name, images in classes.items():
        if not images:
            raise DataError(f"{root / name}: class folder {name!r} holds no images "
                            f"({'/'.join(EXTENSIONS)}) (dataset {_NAME}); add images or remove it")


def _hold_out(images: list[Path], fraction: float, seed: int,
              name: str) -> tuple[list[Path], list[Path]]:
    """(train, test) of one class: a seeded `fraction` of its images (at least one held out and
    one kept, so every class is trained and tested; a class of one image is only trained)."""
    count = len(images)
    take = min(max(math.floor(fraction * count + 0.5), 1), count - 1)
    chosen = set(random.Random(f"{seed}:{name}").sample(range(count), take))
    return ([p for i, p in enumerate(images) if i not in chosen],
            [p for i, p in enumerate(images) if i in chosen])


Samples = dict[str, list[tuple[Path, int]]]  # split -> (image file, label)


def _plan(options: dict[str, Any]) -> tuple[Samples, list[str], list[str]]:
    """(samples per split as (file, label), class names, notes) from the folder listing."""
    files = user_files(options)
    classes, notes = list_classes(files["train"])
    _check_classes(files["train"], classes, "path")
    names = sorted(classes)
    if len(names) < 2:
        raise DataError(f"{files['train']}: only one class ({names[0]!r}); classification needs at "
                        f"least two class sub-folders (dataset {_NAME})")
    splits: Samples = {"train": [], "test": []}
    if "test" in files:
        test_classes, test_notes = list_classes(files["test"])
        notes += test_notes
        unknown = sorted(set(test_classes) - set(names))
        if unknown:
            raise DataError(f"{files['test']}: class folder(s) {', '.join(unknown)} are not in "
                            f"{files['train']} (dataset {_NAME}); test classes must be training "
                            "classes")
        for label, name in enumerate(names):
            splits["train"] += [(p, label) for p in classes[name]]
            splits["test"] += [(p, label) for p in test_classes.get(name, [])]
        if not splits["test"]:
            raise DataError(f"{files['test']}: holds no images (dataset {_NAME}, option test_path)")
    else:
        fraction = float(options["test_fraction"])
        if not 0 < fraction < 1:
            raise DataError(f"dataset {_NAME}: test_fraction must be between 0 and 1, got "
                            f"{fraction}")
        for label, name in enumerate(names):
            train, test = _hold_out(classes[name], fraction, int(options["seed"]), name)
            splits["train"] += [(p, label) for p in train]
            splits["test"] += [(p, label) for p in test]
        if not splits["test"]:
            raise DataError(f"{files['train']}: every class has a single image, none can be held "
                            f"out for testing (dataset {_NAME}); add images or give a test_path")
    return splits, names, notes


def counts(options: dict[str, Any]) -> dict[str, int]:
    splits, _, _ = _plan(options)
    return {split: len(samples) for split, samples in splits.items()}


def _shape(options: dict[str, Any]) -> tuple[int, int, int]:
    size, color = options["image_size"], options["color"]
    if (not isinstance(size, (list, tuple)) or len(size) != 2
            or not all(isinstance(v, int) and v > 0 for v in size)):
        raise DataError(f"dataset {_NAME}: image_size must be [height, width] in pixels, got "
                        f"{size!r}")
    if color not in ("rgb", "grayscale"):
        raise DataError(f"dataset {_NAME}: color must be \"rgb\" or \"grayscale\", got {color!r}")
    return int(size[0]), int(size[1]), 3 if color == "rgb" else 1


def decode_image(path: Path, shape: tuple[int, int, int]) -> np.ndarray:
    """One image file -> uint8 (height, width, channels), resized bilinearly."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    height, width, channels = shape
    try:
        with Image.open(path) as image:
            image = image.convert("RGB" if channels == 3 else "L")
            if image.size != (width, height):
                image = image.resize((width, height), Image.Resampling.BILINEAR)
            array = np.asarray(image, dtype=np.uint8)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError,
            SyntaxError) as exc:
        raise DataError(f"{path}: not a readable image ({type(exc).__name__}: {exc}) (dataset "
                        f"{_NAME}); replace or remove the file") from exc
    return array.reshape(shape)


def _batches(samples: list[tuple[Path, int]], shape: tuple[int, int, int],
             rows: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    import numpy as np

    for start in range(0, len(samples), rows):
        chunk = samples[start:start + rows]
        images = np.empty((len(chunk), *shape), dtype=np.uint8)
        for row, (path, _) in enumerate(chunk):
            images[row] = decode_image(path, shape)
        yield images, np.array([label for _, label in chunk], dtype=np.int64)


def open_dataset(files: dict[str, Path], options: dict[str, Any]) -> ImageDataset:
    shape = _shape(options)
    splits, names, notes = _plan(options)
    sources = {"train": str(files["train"]), "test": str(files.get("test", files["train"]))}
    return ImageDataset(
        splits={split: ImageSplit(
                    count=len(samples), source=sources[split],
                    batches=lambda rows, samples=samples: _batches(samples, shape, rows))
                for split, samples in splits.items()},
        shape=shape, class_names=names, num_classes=len(names), notes=notes)
