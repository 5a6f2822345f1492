"""A user's own UTF-8 text: a local file, read in place, or an http(s) URL, downloaded.

Option ``path``: the file (``~`` is expanded) or the URL. A URL has no
published checksum: the download is checked by decoding it and its sha256 is
recorded. Without a network, a copy at ``<mirror>/text_file/<file name>`` is
used instead of the URL.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from plugins.datasets.api import DataError, RemoteFile, TextCorpus
from plugins.datasets.text import file_name, is_url, read_corpus

KIND = "text_corpus"
DEFAULTS: dict[str, Any] = {"path": None}


def source(options: Mapping[str, Any]) -> str:
    """The path or URL of the text; a missing one is an error saying how to give it."""
    path = options.get("path")
    if not isinstance(path, str) or not path.strip():
        raise DataError(
            f"dataset text_file needs the option path (got {path!r}): the path of a UTF-8 text "
            "file or an http(s) URL, e.g. --corpus ~/books/mine.txt or --corpus "
            "https://example.org/mine.txt")
    return path.strip()


def user_files(options: Mapping[str, Any]) -> dict[str, Path] | None:
    """A local file, read where it is; None for a URL."""
    path = source(options)
    if is_url(path):
        return None
    file = Path(path).expanduser().absolute()
    if not file.is_file():
        what = "is a folder, not a file" if file.is_dir() else "not found"
        raise DataError(f"corpus file '{file}' {what}; give the path of a UTF-8 text file "
                        "or an http(s) URL")
    return {"text": file}


def remote(options: Mapping[str, Any]) -> tuple[RemoteFile, ...]:
    """The URL to download (unpinned); nothing for a local file."""
    path = source(options)
    return (RemoteFile(file_name(path), (path,), None, None),) if is_url(path) else ()


def locate(folder: Path, options: Mapping[str, Any]) -> dict[str, Path] | None:
    """A downloaded (or mirrored) copy of the URL in `folder`."""
    path = source(options)
    if not is_url(path):
        return None
    file = Path(folder) / file_name(path)
    return {"text": file} if file.is_file() else None


def open_dataset(files: Mapping[str, Path], options: Mapping[str, Any]) -> TextCorpus:
    return read_corpus(files["text"])
