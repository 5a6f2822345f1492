"""Nietzsche's works in English (the Keras text-datasets copy): ~600k characters, UTF-8, LF."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from plugins.datasets.api import RemoteFile, TextCorpus
from plugins.datasets.text import read_corpus

KIND = "text_corpus"
DEFAULTS: dict[str, Any] = {}
FILE = "nietzsche.txt"
# No checksum is published upstream: these pin the copy tfpipe was tested with
# (600,918 bytes = 600,901 characters; some are two-byte UTF-8).
REMOTE = (
    RemoteFile(FILE, ("https://s3.amazonaws.com/text-datasets/nietzsche.txt",),
               "dea01ca2da603db6736fd856c585d073ccf3dca68efe4a59c5e73242cdf0b028", 600918),
)


def locate(folder: Path, options: Mapping[str, Any]) -> dict[str, Path] | None:
    path = Path(folder) / FILE
    return {"text": path} if path.is_file() else None


def open_dataset(files: Mapping[str, Path], options: Mapping[str, Any]) -> TextCorpus:
    return read_corpus(files["text"])
