"""Data stages of the image path: find or download a dataset, then preprocess it."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import luigi
from luigi.util import requires

from plugins.datasets.catalog import IMAGE_DATASETS, local_layout
from plugins.errors import TfpipeError
from tasks import atomic
from tasks.base import PipelineTask
from tasks.content import cached_sha256
from tasks.download import fetch

logger = logging.getLogger(__name__)


def image_source_folders(dataset: str, mirror: str | None) -> list[Path]:
    """Where a local copy of `dataset` may be, in the order they are tried."""
    folders = [Path(mirror) / dataset] if mirror else []
    entry = IMAGE_DATASETS.get(dataset)
    if entry:
        folders.extend(Path(folder) for folder in entry.local_copies)
    return folders


class DownloadImageDataset(PipelineTask):
    """Reads the dataset from the mirror folder, a distribution's copy, or its pinned URLs.

    Writes the raw files (IDX .gz or npz), validated by decoding them.
    """

    stage = "download"
    dataset = luigi.Parameter(description="mnist, fashion_mnist, or a folder name under the mirror")
    dataset_options = luigi.DictParameter(description="options of the dataset plugin")
    mirror = luigi.OptionalParameter(default=None, significant=False,
                                     description="folder with one sub-folder per dataset")

    def run_name(self) -> str:
        return self.dataset

    def local_files(self) -> dict[str, Path] | None:
        for folder in image_source_folders(self.dataset, self.mirror):
            layout = local_layout(folder)
            if layout:
                return layout
        return None

    def fingerprint_components(self) -> dict[str, Any]:
        components = super().fingerprint_components()
        local = self.local_files()
        if local:
            cache = Path(self.workspace) / ".cache" / "file-hashes.json"
            components["source"] = {role: cached_sha256(path, cache) for role, path in sorted(local.items())}
        elif self.dataset in IMAGE_DATASETS:
            components["source"] = {f.name: f.sha256 for f in IMAGE_DATASETS[self.dataset].remote_files()}
        else:
            tried = ", ".join(str(f) for f in image_source_folders(self.dataset, self.mirror)) or "no mirror set"
            raise TfpipeError(
                f"unknown dataset {self.dataset!r}: built-in datasets are {', '.join(sorted(IMAGE_DATASETS))}; "
                f"for your own data put the four IDX files (or one npz with x_train, y_train, x_test, "
                f"y_test) in <mirror>/{self.dataset}/ and set TFPIPE_DATA_MIRROR or data.mirror "
                f"(looked in: {tried})"
            )
        return components

    def produce(self, folder: Path) -> dict[str, Any]:
        from tasks.image.arrays import read_arrays  # numpy stays out of a no-op rerun

        local = self.local_files()
        if local:
            read_arrays(local)  # validate before copying: a bad mirror file fails here, by name
            files = {}
            for role, path in local.items():
                target = folder / path.name
                atomic.write_bytes(target, path.read_bytes())
                files[role] = target
            source = {role: str(path) for role, path in local.items()}
        else:
            entry = IMAGE_DATASETS[self.dataset]
            files, source = {}, {}
            for remote in entry.remote_files():
                target = folder / remote.name
                source[remote.name] = fetch(remote, target)
                files[remote.name] = target
            files = local_layout(folder) or files
        arrays = read_arrays(files)
        logger.info("%s: %d training and %d test images of shape %s", self.dataset,
                    len(arrays["x_train"]), len(arrays["x_test"]), arrays["x_train"].shape[1:])
        return {"source": source, "files": sorted(path.name for path in files.values()),
                "counts": {key: len(value) for key, value in arrays.items()}}


@requires(DownloadImageDataset)
class PreprocessImages(PipelineTask):
    """Reads the raw dataset; writes float32 images in [0, 1] as train/val/test .npy plus meta.json."""

    stage = "preprocess"
    validation_fraction = luigi.FloatParameter(description="fraction of the training samples "
                                               "held out for validation")
    split_seed = luigi.IntParameter(description="seed of the validation split")

    def run_name(self) -> str:
        return self.dataset

    def produce(self, folder: Path) -> dict[str, Any]:
        import numpy as np

        from tasks.image.arrays import read_arrays, scale_images, split_validation

        raw = local_layout(self.requires().folder())
        if raw is None:
            raise TfpipeError(f"{self.requires().folder()} holds no dataset files; delete that folder and rerun")
        arrays = read_arrays(raw)
        (x_train, y_train), (x_val, y_val) = split_validation(
            arrays["x_train"], arrays["y_train"], self.validation_fraction, self.split_seed)
        splits = {"train": (x_train, y_train), "val": (x_val, y_val),
                  "test": (arrays["x_test"], arrays["y_test"])}
        for split, (x, y) in splits.items():
            atomic.save_npy(folder / f"{split}_x.npy", scale_images(x))
            atomic.save_npy(folder / f"{split}_y.npy", y.astype(np.int32))
        num_classes = int(max(arrays["y_train"].max(), arrays["y_test"].max())) + 1
        entry = IMAGE_DATASETS.get(self.dataset)
        names = list(entry.class_names) if entry and len(entry.class_names) == num_classes else [
            str(i) for i in range(num_classes)]
        meta = {
            "input_shape": list(scale_images(x_train[:1]).shape[1:]),
            "num_classes": num_classes,
            "class_names": names,
            "counts": {split: len(x) for split, (x, _) in splits.items()},
        }
        atomic.write_json(folder / "meta.json", meta)
        return meta
