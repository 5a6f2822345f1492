"""What a dataset plugin (entry-point group ``tfpipe.datasets``) provides, and the types it uses.

A dataset plugin is a module with:

``KIND``
    ``"image_classification"`` (images with one integer label each) or
    ``"text_corpus"`` (one UTF-8 text). A literal string: tfpipe reads it
    without importing the module.
``DEFAULTS``
    Its options and their defaults (``{}`` if none). Users set them with
    ``--dataset-options '{...}'`` (``--corpus-options`` on the text path);
    unknown options are an error (see :func:`with_defaults`).
``MIRROR_KEEPS_LABEL``
    Optional, image datasets: True where an image mirrored left to right keeps its
    label (clothing, objects; not digits). ``image.augment: auto`` then mirrors half
    of each training batch. A literal, read without importing the module.
``REMOTE``
    Optional: the :class:`RemoteFile` s to download when no local copy is
    found, each pinned by sha256 and size. Without it the dataset is local only.
``remote(options) -> tuple[RemoteFile, ...]``
    Optional: remote files that depend on the options (a user's URL), used
    instead of ``REMOTE``.
``LOCAL_COPIES``
    Optional: folders a distribution package may have installed the data in,
    looked at after ``<mirror>/<name>/``.
``VERIFY_LOCAL``
    Optional, default False: True when a local copy (mirror or LOCAL_COPIES)
    must be byte-identical to REMOTE, so its size and sha256 are checked before
    use. Leave it False where packagers re-compress the files (Debian's
    Fashion-MNIST): such copies are checked by decoding them.
``locate(folder, options) -> dict[str, Path] | None``
    The dataset's files in ``folder`` by role (e.g. ``train_images``), or
    None if ``folder`` holds no complete copy. Cheap: no decoding.
``user_files(options) -> dict[str, Path] | None``
    Optional: for data the user points at (a ``path`` option), the files or
    folders to read in place, without a copy; None when the data is not the
    user's. tfpipe fingerprints their content (a folder: every file under it).
``counts(options) -> dict[str, int] | None``
    Optional: samples per split (``train``, ``test``) found cheaply, before
    anything is downloaded or decoded: declared sizes, a file listing, file
    headers. Must not import numpy. None when unknown.
``open_dataset(files, options) -> ImageDataset | TextCorpus``
    Decode the files. Image samples are streamed in batches (``ImageSplit.batches``),
    so no dataset ever has to fit in memory.

Module import must stay cheap (no numpy, no TensorFlow at the top): tfpipe
loads the plugin in the Luigi process to find its files.

tfpipe checks what a plugin yields (uint8 images of the declared shape,
non-negative integer labels below ``num_classes``, split sizes) and refuses
bad data naming ``ImageSplit.source`` / ``label_source`` and the dataset.

Plugins import nothing from ``tasks``; they raise :class:`DataError` (a
TfpipeError) naming the file, the dataset and what to do.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

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
    """RemoteFiles named in `pins` (name -> (size, sha256)), each found under every base URL."""
    return tuple(RemoteFile(name, tuple(base + name for base in bases), sha, size)
                 for name, (size, sha) in pins.items())


def with_defaults(dataset: str, defaults: Mapping[str, Any], options: Mapping[str, Any] | None,
                  flag: str = "--dataset-options") -> dict[str, Any]:
    """The plugin's DEFAULTS with the user's options on top; an unknown option is an error."""
    options = dict(options or {})
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        known = ", ".join(sorted(defaults)) or "none"
        raise DataError(f"dataset {dataset!r} has no option {', '.join(map(repr, unknown))} "
                        f"(it takes: {known}); fix {flag}")
    return {**defaults, **options}


# A batch of images: uint8 (n, height, width, channels) and integer labels (n,).
Batches = Callable[[int], Iterator[tuple["np.ndarray", "np.ndarray"]]]


@dataclass
class ImageSplit:
    """One split, read as a stream: `batches(rows)` yields (images, labels) of at most `rows`."""

    count: int | None  # None: not known without reading the whole split
    batches: Batches
    source: str  # the file or folder its images come from, for messages
    label_source: str | None = None  # the file its labels come from, when not `source`

    @property
    def labels_from(self) -> str:
        return self.label_source or self.source


@dataclass
class ImageDataset:
    splits: dict[str, ImageSplit]  # "train" and "test"
    shape: tuple[int, int, int]  # (height, width, channels) of every image
    class_names: list[str] | None = None  # index = label; None: the labels' numbers
    num_classes: int | None = None  # declared by known datasets; labels must lie below it
    notes: list[str] = field(default_factory=list)  # warnings for the log and the report


@dataclass
class TextCorpus:
    text: str
    source: str
