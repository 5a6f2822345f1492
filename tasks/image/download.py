"""Download stage of the image path: find, fetch or point at a dataset, and validate it."""
from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import luigi
from luigi.freezing import recursively_unfreeze

from plugins import registry
from plugins.datasets.api import IMAGE, DataError, RemoteFile
from plugins.errors import TfpipeError
from tasks.atomic import writing
from tasks.content import cached_sha256, content_sha256
from tasks.dataset_task import DatasetTask
from tasks.download import ChecksumMismatch, fetch, mirror_path

logger = logging.getLogger(__name__)


def dataset_label(dataset: str, dataset_options: Mapping[str, Any] | None) -> str:
    """A short readable name for folders and runs: the dataset, plus the last part of its
    ``path`` option for data the user points at (``image_folder-flowers``)."""
    path = (dataset_options or {}).get("path")
    label = dataset
    if path:
        target = Path(str(path)).expanduser()
        stem = target.name or target.resolve().name
        label = f"{dataset}-{stem.rsplit('.', 1)[0] if target.suffix == '.npz' else stem}"
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", label)


@contextmanager
def naming_the_dataset(name: str) -> Iterator[None]:
    """Data errors of generic readers (IDX, npz) name the file; add the dataset they belong to."""
    try:
        yield
    except DataError as exc:
        message = str(exc)
        if f"dataset {name}" in message or f"dataset {name!r}" in message:
            raise
        raise DataError(f"{message} [dataset {name}]") from exc


def load_plugin(name: str) -> Any:
    return registry.DATASETS.load(name, IMAGE)


@dataclass(frozen=True)
class Source:
    """Where a dataset's files are: the user's own (read in place), a local copy, or remote."""

    kind: str  # "user", "local" or "remote"
    files: dict[str, Path]  # role -> path (user/local); empty for remote
    where: str  # the folder searched or the user's path, for messages


class DownloadImageDataset(DatasetTask):
    """Reads the dataset from the user's path (in place), ``<mirror>/<dataset>/``, the plugin's
    LOCAL_COPIES or its pinned URLs; validates it by decoding every sample (bounded memory).

    Writes copies of mirror/local files or the downloaded files (nothing for data read in
    place); its record holds the files by role, counts, image shape and class names.
    """

    stage = "download"
    KIND = IMAGE
    OPTIONS_FLAG = "--dataset-options"
    dataset = luigi.Parameter(description="a tfpipe.datasets plugin: mnist, fashion_mnist, "
                                          "cifar10, image_folder, arrays, or a third-party one")
    dataset_options = luigi.DictParameter(description="options of the dataset plugin, e.g. "
                                                      '{"path": "/data/flowers"}')
    mirror = luigi.OptionalParameter(default=None, significant=False,
                                     description="folder with one sub-folder per dataset")

    # ----- identity ---------------------------------------------------------
    def run_name(self) -> str:
        return dataset_label(self.dataset, recursively_unfreeze(self.dataset_options))

    def dataset_name(self) -> str:
        return self.dataset

    def given_options(self) -> Any:
        return self.dataset_options

    def candidate_folders(self) -> list[Path]:
        """Where a local copy may be, in the order they are tried."""
        folders = [Path(self.mirror) / self.dataset] if self.mirror else []
        return folders + [Path(folder) for folder in getattr(self.plugin(), "LOCAL_COPIES", ())]

    def source(self) -> Source:
        """Found once per task object: the fingerprint and the run see the same files."""
        if "_source" not in self.__dict__:
            self.__dict__["_source"] = self._find_source()
        return self.__dict__["_source"]

    def _find_source(self) -> Source:
        plugin, options = self.plugin(), self.options()
        user_files = getattr(plugin, "user_files", None)
        if user_files is not None:
            files = user_files(options)
            if files is not None:
                return Source("user", {role: Path(p) for role, p in files.items()},
                              str(options.get("path")))
        for folder in self.candidate_folders():
            found = plugin.locate(folder, options)
            if found:
                return Source("local", {role: Path(p) for role, p in found.items()}, str(folder))
        if getattr(plugin, "REMOTE", ()):
            return Source("remote", {}, ", ".join(f.urls[0] for f in plugin.REMOTE))
        tried = ", ".join(str(f) for f in self.candidate_folders()) or "no mirror set"
        folder = mirror_path(self.mirror, self.dataset)
        unset = "" if self.mirror else (" after setting TFPIPE_DATA_MIRROR (or data.mirror in your "
                                        "config) to a folder")
        raise TfpipeError(
            f"dataset {self.dataset!r} has no local copy and nothing to download (looked in: "
            f"{tried}); put its files in {folder}/{unset}, or install the package that provides "
            "them")

    def fingerprint_components(self) -> dict[str, Any]:
        components = super().fingerprint_components()
        components["dataset_plugin"] = self.plugin_info().identity()
        source = self.source()
        cache = self.hash_cache_file()
        if source.kind == "remote":
            components["source"] = {f.name: f.sha256 or f"size {f.size}"
                                    for f in self.plugin().REMOTE}
        else:
            # The content decides the result, wherever it lies (a folder: every file under it).
            components["source"] = {role: content_sha256(path, cache)
                                    for role, path in sorted(source.files.items())}
        return components

    # ----- reading the result -------------------------------------------------
    def record(self) -> dict[str, Any]:
        return self.manifest()["record"]

    def data_files(self) -> dict[str, Path]:
        """The dataset's files by role (run it first). Copies in this task's folder were checked
        with the folder (PipelineTask.verify_upstream); files read in place are checked here."""
        manifest = self.manifest()
        record = manifest["record"]
        files = {role: self.folder() / name for role, name in record["files"].items()}
        if record["in_place"]:
            expected = manifest["components"]["source"]
            for role, path in files.items():
                if not path.exists() or content_sha256(path, self.hash_cache_file()) != expected.get(role):
                    raise TfpipeError(f"{path} changed since {self.task_id} read it; rerun so the "
                                      "dataset is read again")
        return files

    # ----- running ------------------------------------------------------------
    def produce(self, folder: Path) -> dict[str, Any]:
        from tasks.image.validate import scan  # numpy stays out of a no-op rerun

        plugin, options, source = self.plugin(), self.options(), self.source()
        if source.kind == "remote":
            origin = {}
            names = [remote.name for remote in plugin.REMOTE]
            for remote in plugin.REMOTE:
                origin[remote.name] = fetch(
                    remote, folder / remote.name,
                    mirror_path=mirror_path(self.mirror, self.dataset, remote.name),
                    beside=tuple(name for name in names if name != remote.name))
            files = plugin.locate(folder, options)
            if not files:
                raise TfpipeError(f"dataset {self.dataset!r}: the downloaded files "
                                  f"{', '.join(origin)} are not a complete copy; the plugin "
                                  f"({self.plugin_info().describe()}) does not find them in its "
                                  "download folder")
        else:
            files = source.files
            origin = {role: str(path) for role, path in files.items()}
            if source.kind == "local" and getattr(plugin, "VERIFY_LOCAL", False):
                self._verify_local(files)
        with naming_the_dataset(self.dataset):
            facts = scan(plugin.open_dataset(files, options), self.dataset, progress=self._progress)
        self._note_declared_counts(facts)
        record: dict[str, Any] = {"source": origin, "in_place": source.kind == "user", **facts}
        if source.kind == "user":
            record["files"] = {role: str(path.resolve()) for role, path in files.items()}
        else:
            if source.kind == "local":
                files = {role: self._copy(path, folder) for role, path in files.items()}
            record["files"] = {role: path.name for role, path in files.items()}
            record["sha256"] = {role: cached_sha256(path, self.hash_cache_file())
                                for role, path in files.items()}
        logger.info("%s: %d training and %d test images of shape %s, %d classes (%s)",
                    self.run_name(), facts["counts"]["train"], facts["counts"]["test"],
                    tuple(facts["shape"]),
                    facts["num_classes"], source.kind)
        return record

    def _progress(self, split: str, count: int) -> None:
        if count % (1 << 17) < 4096:  # about every 130k samples
            logger.info("%s: checked %d %s samples", self.run_name(), count, split)

    def _note_declared_counts(self, facts: dict[str, Any]) -> None:
        counts = getattr(self.plugin(), "counts", None)
        if self.source().kind == "user" or counts is None:
            return
        declared = counts(self.options())
        if declared and declared != facts["counts"]:
            note = (f"this copy holds {facts['counts']} samples; {self.dataset} has {declared} "
                    f"({self.source().where})")
            facts["notes"].append(note)
            logger.warning("dataset %s: %s", self.dataset, note)

    def _verify_local(self, files: dict[str, Path]) -> None:
        """Local copies of files the plugin pins must be upstream's bytes."""
        pins: dict[str, RemoteFile] = {remote.name: remote for remote in self.plugin().REMOTE}
        for path in files.values():
            remote = pins.get(path.name)
            if remote is None:
                continue
            size = path.stat().st_size
            if remote.size is not None and size != remote.size:
                raise ChecksumMismatch(f"{path}: size {size} bytes, expected {remote.size} for "
                                       f"dataset {self.dataset}; the copy is incomplete or another "
                                       f"file: replace it with {remote.urls[0]}")
            if remote.sha256 and cached_sha256(path, self.hash_cache_file()) != remote.sha256:
                raise ChecksumMismatch(f"{path}: sha256 differs from the pinned {remote.sha256} of "
                                       f"dataset {self.dataset}; the copy is damaged or another "
                                       f"file: replace it with {remote.urls[0]}")

    @staticmethod
    def _copy(path: Path, folder: Path) -> Path:
        """Stream a copy into the task folder (temp + rename: never a half file under its name)."""
        target = folder / path.name
        tmp = folder / f".{path.name}.part"
        try:
            with writing(target), open(path, "rb") as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
                dst.flush()
                os.fsync(dst.fileno())
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return target

