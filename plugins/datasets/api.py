"""What a dataset plugin (entry-point group ``tfpipe.datasets``) provides, and the types it uses.

A dataset plugin is a module with:

``KIND``
    ``"image_classification"`` (images with one integer label each) or
    ``"text_corpus"`` (one UTF-8 text). A literal string: tfpipe reads it
    without importing the module.
``DEFAULTS``
    Its options and their defaults (``{}`` if none). Users set them under
    ``datasets.<name>`` in a config or with ``--dataset-options '{...}'``
    (``--corpus-options`` on the text path); unknown options are an error.
``REMOTE``
    Optional: the :class:`RemoteFile` s to download when no local copy is
    found, each pinned by sha256 and size. Without it the dataset is local only.
``remote(options) -> tuple[RemoteFile, ...]``
    Optional: remote files that depend on the options (a user's URL), used
    instead of ``REMOTE``.
``LOCAL_COPIES``
    Optional: folders a distribution package may have installed the data in,
    looked at after ``<mirror>/<name>/``.
``locate(folder, options) -> dict[str, Path] | None``
    The dataset's files in ``folder`` by role (e.g. ``train_images``), or
    None if ``folder`` holds no complete copy. Cheap: no decoding.
``user_files(options) -> dict[str, Path] | None``
    Optional: for data the user points at (``path`` option), the files to read
    in place, without a copy; None when the option is not set.
``open_dataset(files, options)``
    Decode the files: an :class:`ImageDataset` or a :class:`TextCorpus`.
    Image samples are streamed in batches, so no dataset ever has to fit in memory.

Plugins import nothing from ``tasks``; they raise :class:`DataError` (a
TfpipeError) naming the file and what to do.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from plugins.errors import TfpipeError

if TYPE_CHECKING:
    import numpy as np

IMAGE = "image_classification"
TEXT = "text_corpus"


class DataError(TfpipeError):
    """Data that cannot be used as it is: the message names the file and what to do."""


@dataclass(frozen=True)
class RemoteFile:
    name: str
    urls: tuple[str, ...]
    sha256: str | None  # None: no published checksum (checked by decoding instead)
    size: int | None


def pinned(bases: tuple[str, ...], pins: dict[str, tuple[int, str]]) -> tuple[RemoteFile, ...]:
    """RemoteFiles named in `pins` (name -> (size, sha256)), each downloadable from every base URL."""
    return tuple(RemoteFile(name, tuple(base + name for base in bases), sha, size)
                 for name, (size, sha) in pins.items())


# A batch of images: uint8 (n, height, width, channels) and integer labels (n,).
Batches = Callable[[int], Iterator[tuple["np.ndarray", "np.ndarray"]]]


@dataclass
class ImageSplit:
    """One split, read as a stream: `batches(rows)` yields (images, labels) of at most `rows`."""

    count: int
    batches: Batches
    source: str  # the file or folder it comes from, for messages


@dataclass
class ImageDataset:
    splits: dict[str, ImageSplit]  # "train", and "test" unless the data has no test split
    shape: tuple[int, int, int]  # (height, width, channels) of every image
    class_names: list[str] | None = None  # index = label; None: the labels' numbers
    num_classes: int | None = None  # declared by known datasets; checked against the labels
    notes: list[str] = field(default_factory=list)  # warnings for the log and the report


@dataclass
class TextCorpus:
    text: str
    source: str
