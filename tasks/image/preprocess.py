"""Preprocess stage of the image path: the dataset as compact uint8 shards (tasks.image.shards)."""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import luigi
from luigi.freezing import recursively_unfreeze
from luigi.util import requires

from plugins.datasets.api import DataError
from plugins.errors import TfpipeError
from tasks.base import StageTask
from tasks.image.download import DownloadImageDataset, dataset_label
from tasks.image.shards import split_counts
from tasks.protocol import run_stage

logger = logging.getLogger(__name__)


@requires(DownloadImageDataset)
class PreprocessImages(StageTask):
    """Reads the validated dataset (stream); writes train/val/test shards of fixed-length uint8
    records and meta.json, in bounded memory, in its own process.

    The validation set is a seeded choice of round(validation_fraction * n) training samples;
    training samples go to shards at random (seeded) and each shard is shuffled.
    """

    stage = "preprocess"
    validation_fraction = luigi.FloatParameter(description="share of the training samples held out "
                                                           "for validation, between 0 and 1")
    split_seed = luigi.IntParameter(description="seed of the validation split and the shard order")

    def run_name(self) -> str:
        return dataset_label(self.dataset, recursively_unfreeze(self.dataset_options))

    # ----- settings checks (Luigi process, numpy-free) ----------------------
    def known_counts(self) -> dict[str, int] | None:
        """Samples per split: from the completed download, else what the plugin says cheaply."""
        download = self.requires()
        try:
            if download.complete():
                return dict(download.record()["counts"])
            counts = getattr(download.plugin(), "counts", None)
            return counts(download.options()) if counts is not None else None
        except TfpipeError:
            # Missing or unreadable data is the download's to report (once, by its own name),
            # not a problem of the settings checked here.
            return None

    def check_settings(self, batch_size: int) -> None:
        """Refuse, before anything runs, a validation_fraction that leaves no validation sample or
        fewer training samples than one batch. Does nothing when the counts are not known
        cheaply."""
        self.check_fraction()
        counts = self.known_counts()
        if counts and "train" in counts:
            check_split(counts["train"], self.validation_fraction, batch_size, self.run_name())

    def check_fraction(self) -> None:
        if not 0 < self.validation_fraction < 1:
            raise TfpipeError(f"image.validation_fraction={self.validation_fraction} must be "
                              "between 0 and 1 (e.g. 0.1 holds out a tenth of the training "
                              "samples)")

    # ----- reading the result -------------------------------------------------
    def meta(self) -> dict[str, Any]:
        """meta.json of the completed shards (run it first; a task reading them has checked the
        folder against its manifest in verify_upstream)."""
        return json.loads((self.folder() / "meta.json").read_text("utf-8"))

    # ----- running ------------------------------------------------------------
    def produce(self, folder: Path) -> dict[str, Any]:
        self.check_fraction()
        download = self.requires()
        files = download.data_files()
        facts = download.record()
        check_split(facts["counts"]["train"], self.validation_fraction, 1, self.run_name())
        request = {
            "dataset": self.dataset,
            "options": download.options(),
            "files": {role: str(path) for role, path in files.items()},
            "counts": facts["counts"],
            "shape": facts["shape"],
            "num_classes": facts["num_classes"],
            "class_names": facts["class_names"],
            "validation_fraction": self.validation_fraction,
            "split_seed": self.split_seed,
            "out_dir": str(folder),
        }
        record = run_stage(self, request, folder)
        test_only = facts.get("test_only_labels") or {}
        warnings = ([unlearnable_labels_warning(test_only, facts["class_names"], self.run_name())]
                    if test_only else [])
        for warning in warnings:
            logger.warning("%s", warning)
        # The report shows these (pipelines.summary reads this record).
        return {**record, "test_only_labels": test_only, "warnings": warnings}


def unlearnable_labels_warning(test_only: dict[str, int], class_names: list[str], label: str) -> str:
    """One line on the labels only the test set has: which, how many samples, what it means."""
    def named(value: str) -> str:
        name = class_names[int(value)] if int(value) < len(class_names) else value
        return value if name == value else f"{value} {name!r}"

    samples, shown = sum(test_only.values()), 20
    ordered = sorted(test_only.items(), key=lambda item: int(item[0]))
    listed = ", ".join(f"{named(value)} ({count} test sample{'s' * (count != 1)})"
                       for value, count in ordered[:shown])
    if len(ordered) > shown:
        listed += f" and {len(ordered) - shown} more"
    one = len(test_only) == 1
    errors = ("this test sample counts as an error" if samples == 1
              else f"these {samples} test samples count as errors")
    return (f"{label}: {'label' if one else 'labels'} {listed} {'is' if one else 'are'} only in the "
            f"test set, never in training. The model cannot learn {'it' if one else 'them'}, so "
            f"{errors}; check the labels, or move some of those samples into the training set")


def check_split(count: int, fraction: float, batch_size: int, label: str) -> None:
    """The split of `count` training samples must leave a validation sample and one batch."""
    train, held = split_counts(count, fraction)
    if held < 1:
        raise TfpipeError(
            f"image.validation_fraction={fraction} of the {count} training samples of {label} "
            f"holds out {fraction * count:.2f} samples, which rounds to none; raise "
            f"image.validation_fraction to at least {0.5 / count:.2g}")
    if train < batch_size:
        raise TfpipeError(
            f"image.batch_size={batch_size} is larger than the {train} training samples of "
            f"{label} left after holding out {held} of {count} "
            f"(image.validation_fraction={fraction}); lower image.batch_size or "
            "image.validation_fraction")


# ----- the stage's own process: python -m tasks.image.preprocess REQUEST.json -----

READ_BYTES = 16 << 20  # bytes of images decoded per batch


def work(request: dict[str, Any]) -> dict[str, Any]:
    from tasks.image import shards
    from tasks.image.download import naming_the_dataset

    try:
        with naming_the_dataset(request["dataset"]):
            return write_shards(request)
    except BaseException:
        # Nothing of a failed run stays behind (on a full disk, it holds the space a rerun needs).
        shards.discard(Path(request["out_dir"]))
        (Path(request["out_dir"]) / "meta.json").unlink(missing_ok=True)
        raise


def write_shards(request: dict[str, Any]) -> dict[str, Any]:
    """Stream the dataset once into train/val/test shards and meta.json in request["out_dir"]."""
    import math

    from tasks import atomic
    from tasks.image import shards
    from tasks.image.download import load_plugin
    from tasks.image.validate import check_splits, checked_batches
    from tasks.protocol import Progress

    name, out = request["dataset"], Path(request["out_dir"])
    plugin = load_plugin(name)
    dataset = plugin.open_dataset({role: Path(p) for role, p in request["files"].items()},
                                  request["options"])
    check_splits(dataset, name)
    shape, num_classes = tuple(dataset.shape), request["num_classes"]
    if list(shape) != list(request["shape"]):
        raise DataError(f"dataset {name!r} now has images of shape {shape}, {request['shape']} "
                        "when it was downloaded; rerun so it is read again")
    counts = request["counts"]
    fraction, seed = request["validation_fraction"], request["split_seed"]
    size = shards.record_bytes(shape)
    per_shard = shards.records_per_shard(size)
    rows = max(16, min(4096, READ_BYTES // size))
    n_train, n_val = shards.split_counts(counts["train"], fraction)
    held = shards.validation_mask(counts["train"], fraction, seed)
    assignment = shards.shard_assignment(n_train, math.ceil(n_train / per_shard), seed)
    train = shards.RandomWriter(out, "train", size, assignment, seed)
    writers = {"val": shards.SequentialWriter(out, "val", size, per_shard),
               "test": shards.SequentialWriter(out, "test", size, per_shard)}
    progress = Progress(counts["train"] + counts["test"], f"preprocess {name}")
    done = 0
    for split in ("train", "test"):
        position = 0
        for images, labels in checked_batches(dataset, split, name, rows):
            if labels.max(initial=0) >= num_classes or position + len(labels) > counts[split]:
                raise DataError(f"{dataset.splits[split].source}: differs from what was "
                                f"downloaded (more samples or a label >= {num_classes}); rerun so "
                                "it is read again")
            records = shards.encode(images, labels)
            if split == "train":
                mask = held[position:position + len(labels)]
                writers["val"].add(records[mask])
                train.add(records[~mask])
            else:
                writers["test"].add(records)
            position += len(labels)
            done += len(labels)
            progress.update(done)
        if position != counts[split]:
            raise DataError(f"{dataset.splits[split].source}: {position} {split} samples, "
                            f"{counts[split]} when it was downloaded; rerun so it is read again")
    files = {"train": train.close(), "val": writers["val"].close(), "test": writers["test"].close()}
    meta = shards.meta(shape, num_classes, request["class_names"], files, dataset=name,
                       validation_fraction=fraction, split_seed=seed)
    expected = {"train": n_train, "val": n_val, "test": counts["test"]}
    if meta["counts"] != expected:
        raise DataError(f"dataset {name!r}: wrote {meta['counts']} samples, expected {expected}")
    atomic.write_json(out / "meta.json", meta)
    progress.update(done, force=True)
    kept = ("input_shape", "num_classes", "class_names", "counts", "shards")
    return {**{key: meta[key] for key in kept}, "record_bytes": size,
            "records_per_shard": per_shard}


if __name__ == "__main__":
    from tasks.protocol import main

    main(work)
